"""deploy/: every overlay renders, every rendered document matches its schema (Kubernetes' own
for core kinds, the committed CRD schemas for the operators' kinds), every workload runs a job
file of this repository with a config environment that loads from the variables the manifest
gives it, the Kafka topics are the configured ones, and every image has a Dockerfile whose
sources, locks and extras exist. Offline: kustomize comes with the app environment's kubectl."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from deploy_manifests import (
    OVERLAYS,
    ROOT,
    Doc,
    Workload,
    dockerfile_problems,
    dockerfiles,
    environ_of,
    image_runtime,
    job_file_problems,
    lock_pins,
    mutated,
    name_of,
    parse_dockerfile,
    render,
    required_variables,
    schema_problems,
    spark_spec,
    workloads,
)

from rtrec.batch.runtime import DELTA_CONF
from rtrec.config import Settings, load_settings
from rtrec.local.topics import topic_configs

pytestmark = pytest.mark.unit

ENVS = sorted(p.stem for p in (ROOT / "conf").glob("*.yaml") if p.stem != "base")
# Which extras a workload's image must carry, by the job it runs.
EXTRAS_BY_JOB_DIR = {"jobs/flink": {"flink"}, "jobs/spark": {"spark"}, "jobs": {"serve"}}
EXTRAS_BY_JOB = {"jobs/spark/train.py": {"spark", "train"}, "jobs/flink/scoring.py": {"scoring"}}
# Each runtime's lock (requirements/compile.sh compiles them from these extras).
LOCK_OF = {
    "flink": "flink.lock",
    "spark": "spark.lock",
    "train": "spark.lock",
    "horovod": "spark.lock",
    "serve": "app.lock",
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {overlay.name: render(overlay) for overlay in sorted(OVERLAYS.iterdir())}


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc.get("kind") == kind]


def settings_of(workload: Workload, docs: list[Doc]) -> Settings:
    environ, missing = environ_of(workload, docs)
    assert not missing, missing
    assert workload.env_name is not None
    return load_settings(workload.env_name, workload.overrides, environ=environ)


# --- rendering and schemas ---


def test_one_overlay_per_config_environment() -> None:
    assert sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir()) == ENVS


def test_every_rendered_document_matches_its_schema(rendered: dict[str, list[Doc]]) -> None:
    for overlay, docs in rendered.items():
        kinds = {doc["kind"] for doc in docs}
        # The whole system is there: operators' resources and the plain ones.
        assert {
            "FlinkDeployment",
            "SparkApplication",
            "ScheduledSparkApplication",
            "Kafka",
            "KafkaNodePool",
            "KafkaTopic",
            "Deployment",
            "StatefulSet",
            "Service",
            "ConfigMap",
        } <= kinds, overlay
        problems = [problem for doc in docs for problem in schema_problems(doc)]
        assert problems == [], f"{overlay}: {problems}"


def _first(docs: list[Doc], kind: str) -> Doc:
    return of_kind(docs, kind)[0]


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        # A misspelt field: the committed CRD schemas are closed, unlike Kubernetes' pruning.
        ("FlinkDeployment", ["spec", "job", "upgradeMod"], "savepoint", "upgradeMod"),
        ("FlinkDeployment", ["spec", "job", "upgradeMode"], "snapshot", "snapshot"),
        ("SparkApplication", ["spec", "driver", "memmory"], "1g", "memmory"),
        ("ScheduledSparkApplication", ["spec", "schedul"], "@daily", "schedul"),
        ("KafkaTopic", ["spec", "partitions"], "2", "'2' is not of type 'integer'"),
        ("KafkaNodePool", ["spec", "roles"], ["leader"], "leader"),
        ("Kafka", ["spec", "kafka", "listeners", 0, "type"], "intern", "intern"),
        # Core kinds through kubernetes-validate, strict.
        ("Deployment", ["spec", "template", "spec", "containers", 0, "imagePullPolice"], "x", ""),
        ("Service", ["spec", "ports", 0, "port"], "http", "'http' is not of type 'integer'"),
    ],
)
def test_a_broken_document_is_rejected(
    rendered: dict[str, list[Doc]], kind: str, path: list[str | int], value: object, expected: str
) -> None:
    doc = _first(rendered["cluster"], kind)
    assert schema_problems(doc) == []
    problems = schema_problems(mutated(doc, path, value))
    assert problems, f"{kind} with {path}={value!r} was accepted"
    assert expected in " ".join(problems)


def test_a_kind_without_a_schema_is_rejected() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert schema_problems(widget) == ["Widget/w: no schema for example.com/v1 Widget"]


# --- workloads, jobs and config ---


def test_every_job_runs_a_job_file_of_the_repository_in_its_environment(
    rendered: dict[str, list[Doc]],
) -> None:
    for overlay, docs in rendered.items():
        found = workloads(docs)
        assert job_file_problems(docs) == [], overlay
        assert {w.env_name for w in found} == {overlay}
        # The overlay named the environment everywhere: no placeholder of base is left.
        assert "set-by-overlay" not in repr(docs)
        jobs = {w.job for w in found}
        flink_jobs = {f"/opt/rtrec/jobs/flink/{p.name}" for p in (ROOT / "jobs/flink").glob("*.py")}
        assert flink_jobs <= jobs, overlay
        assert {
            "/opt/rtrec/jobs/spark/ingest.py",
            "/opt/rtrec/jobs/spark/curate.py",
            "/opt/rtrec/jobs/spark/publish_bought_together.py",
            "/opt/rtrec/jobs/spark/train.py",
            "/opt/rtrec/jobs/api.py",
            "/opt/rtrec/jobs/online_store.py",
        } <= jobs


def test_a_manifest_naming_a_missing_job_or_environment_is_caught(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["cluster"]
    flink = _first(docs, "FlinkDeployment")
    args = list(flink["spec"]["job"]["args"])
    args[1] = "/opt/rtrec/jobs/flink/no_such_job.py"
    broken = mutated(flink, ["spec", "job", "args"], args)
    assert any("no_such_job.py" in p for p in job_file_problems([broken]))
    args = list(flink["spec"]["job"]["args"])
    args[args.index("--env") + 1] = "staging"
    broken = mutated(flink, ["spec", "job", "args"], args)
    assert any("conf/staging.yaml" in p for p in job_file_problems([broken]))


def test_every_required_variable_of_the_config_is_set_on_every_workload(
    rendered: dict[str, list[Doc]],
) -> None:
    assert required_variables("cluster") >= {"KAFKA_BOOTSTRAP_SERVERS", "LAKE_ROOT"}
    for docs in rendered.values():
        for workload in workloads(docs):
            environ, missing = environ_of(workload, docs)
            assert missing == []
            assert workload.env_name is not None
            unset = required_variables(workload.env_name) - environ.keys()
            assert unset == set(), f"{workload.name}: {sorted(unset)} not set"


def test_a_workload_missing_a_required_variable_is_caught(rendered: dict[str, list[Doc]]) -> None:
    docs = [d for d in rendered["cluster"] if name_of(d) != "ConfigMap/rtrec-env"]
    api = next(w for w in workloads(docs) if w.job.endswith("/api.py"))
    environ, missing = environ_of(api, docs)
    assert missing == [f"{api.name}: envFrom ConfigMap rtrec-env is not rendered"]
    assert "KAFKA_BOOTSTRAP_SERVERS" in required_variables("cluster") - environ.keys()


def _service_address(docs: list[Doc], name: str) -> tuple[str, int]:
    service = next(d for d in of_kind(docs, "Service") if d["metadata"]["name"] == name)
    return name, int(service["spec"]["ports"][0]["port"])


def test_every_workload_loads_its_config_and_reaches_the_deployed_services(
    rendered: dict[str, list[Doc]],
) -> None:
    for overlay, docs in rendered.items():
        kafka = _first(docs, "Kafka")
        plain = next(x for x in kafka["spec"]["kafka"]["listeners"] if not x["tls"])
        bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
        for workload in workloads(docs):
            settings = settings_of(workload, docs)
            where = f"{overlay} {workload.name}"
            assert settings.kafka.bootstrap_servers == bootstrap, where
            mlflow = urlsplit(settings.mlflow.tracking_uri)
            assert (mlflow.hostname, mlflow.port) == _service_address(docs, "rtrec-mlflow"), where
            redis = urlsplit(settings.redis.url)
            assert (redis.hostname, redis.port) == _service_address(docs, "rtrec-redis"), where
            # The key of the pseudonyms comes from the Secret wherever events are handled.
            assert settings.privacy.key_env in {v["name"] for v in workload.env}, where
            if workload.doc["kind"] in ("SparkApplication", "ScheduledSparkApplication"):
                mounts = [m["mountPath"] for m in workload.mounts]
                for path in (settings.lake.root, settings.lake.checkpoint_root):
                    assert any(path.startswith(m + "/") for m in mounts), f"{where}: {path}"


def test_flink_jobs_checkpoint_where_the_operator_restores_from(
    rendered: dict[str, list[Doc]],
) -> None:
    for overlay, docs in rendered.items():
        dirs = set()
        for workload in workloads(docs):
            spec = workload.doc["spec"]
            if workload.doc["kind"] != "FlinkDeployment":
                continue
            settings = settings_of(workload, docs)
            conf = spec["flinkConfiguration"]
            where = f"{overlay} {workload.name}"
            assert spec["job"]["upgradeMode"] == "savepoint", where
            assert spec["job"]["jarURI"].startswith("local:///opt/flink/opt/flink-python-")
            assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
            assert conf["high-availability.type"] == "kubernetes", where
            assert conf["high-availability.storageDir"], where
            # The job sets its own checkpoint directory and parallelism from the config: they
            # must be the ones the operator savepoints, restores and sizes by.
            assert settings.flink.checkpoint_dir == conf["state.checkpoints.dir"], where
            assert conf["state.savepoints.dir"], where
            assert settings.flink.parallelism == spec["job"]["parallelism"], where
            assert str(settings.flink.jars_dir) == "/opt/flink/usrlib", where
            dirs.add(conf["state.checkpoints.dir"])
        assert len(dirs) == len(of_kind(docs, "FlinkDeployment")), f"{overlay}: shared state"


def test_the_flink_jobs_run_the_pinned_flink(rendered: dict[str, list[Doc]]) -> None:
    flink = lock_pins("flink.lock")["apache-flink"]
    base = parse_dockerfile(ROOT / "deploy/images/flink.Dockerfile").args_of("FROM")[-1]
    assert base.startswith(f"flink:{flink}-"), base
    for doc in of_kind(rendered["cluster"], "FlinkDeployment"):
        assert doc["spec"]["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink}.jar"
        assert doc["spec"]["flinkVersion"] == "v" + "_".join(flink.split(".")[:2])


def test_spark_applications_enable_delta_and_train_where_the_gpus_are(
    rendered: dict[str, list[Doc]],
) -> None:
    pyspark = lock_pins("spark.lock")["pyspark"]
    for overlay, docs in rendered.items():
        for workload in workloads(docs):
            if workload.doc["kind"] not in ("SparkApplication", "ScheduledSparkApplication"):
                continue
            spec = spark_spec(workload.doc)
            where = f"{overlay} {workload.name}"
            assert spec["sparkVersion"] == pyspark, where
            assert DELTA_CONF.items() <= spec["sparkConf"].items(), where
            if not workload.job.endswith("/train.py"):
                assert "gpu" not in spec["executor"], where
                continue
            training = settings_of(workload, docs).training
            gpu = spec["executor"].get("gpu")
            # use_gpu (NCCL) exactly where executors get a GPU, one rank per executor.
            assert training.use_gpu == (gpu is not None), where
            assert spec["executor"]["instances"] >= training.processes, where
            if gpu is not None:
                assert gpu == {"name": "nvidia.com/gpu", "quantity": 1}, where
                assert spec["sparkConf"]["spark.task.resource.gpu.amount"] == "1", where
        assert any(
            "gpu" in spark_spec(d)["executor"]
            for d in docs
            if d["kind"].endswith("SparkApplication")
        ) == (overlay == "cluster")


def test_topics_are_the_configured_ones_with_the_expected_policies(
    rendered: dict[str, list[Doc]],
) -> None:
    for overlay, docs in rendered.items():
        api = next(w for w in workloads(docs) if w.job.endswith("/api.py"))
        settings = settings_of(api, docs)
        expected = topic_configs(settings)
        topics = {t["spec"]["topicName"]: t for t in of_kind(docs, "KafkaTopic")}
        assert topics.keys() == expected.keys(), overlay
        cluster = _first(docs, "Kafka")["metadata"]["name"]
        brokers = sum(p["spec"]["replicas"] for p in of_kind(docs, "KafkaNodePool"))
        min_isr = _first(docs, "Kafka")["spec"]["kafka"]["config"]["min.insync.replicas"]
        for name, topic in topics.items():
            spec = topic["spec"]
            assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
            assert spec["partitions"] == settings.kafka.partitions, f"{overlay} {name}"
            assert min_isr <= spec["replicas"] <= brokers, f"{overlay} {name}"
            config = {k: str(v) for k, v in spec["config"].items()}
            assert expected[name].items() <= config.items(), f"{overlay} {name}: {config}"


def test_api_listens_where_its_service_points(rendered: dict[str, list[Doc]]) -> None:
    for overlay, docs in rendered.items():
        api = next(w for w in workloads(docs) if w.job.endswith("/api.py"))
        settings = settings_of(api, docs)
        container = api.doc["spec"]["template"]["spec"]["containers"][0]
        assert settings.serving.host == "0.0.0.0", overlay
        assert container["ports"][0]["containerPort"] == settings.serving.port
        keys = {spec.env for spec in settings.serving.api_keys.values()}
        assert keys <= {v["name"] for v in api.env}, overlay


def test_the_config_map_carries_conf(rendered: dict[str, list[Doc]]) -> None:
    for docs in rendered.values():
        conf = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "rtrec-conf")
        files = {p.name: p.read_text() for p in (ROOT / "conf").glob("*.yaml")}
        assert conf["data"] == files
        for workload in workloads(docs):
            assert "/opt/rtrec/conf" in [m["mountPath"] for m in workload.mounts], workload.name


def test_no_secret_is_committed_for_the_cluster(rendered: dict[str, list[Doc]]) -> None:
    assert of_kind(rendered["cluster"], "Secret") == []


# --- images ---


def test_every_image_a_manifest_names_has_a_dockerfile_with_what_its_job_needs(
    rendered: dict[str, list[Doc]],
) -> None:
    images = dockerfiles()
    for overlay, docs in rendered.items():
        for workload in workloads(docs):
            runtime = image_runtime(workload.image)
            assert runtime in images, f"{overlay} {workload.name}: {workload.image}"
            job = workload.job.removeprefix("/opt/rtrec/")
            needed = EXTRAS_BY_JOB_DIR[str(Path(job).parent)] | EXTRAS_BY_JOB.get(job, set())
            assert needed <= images[runtime].extras, f"{workload.name}: {runtime}"
            assert any(
                args.split()[-1] == "/opt/rtrec/jobs" for args in images[runtime].args_of("COPY")
            ), runtime
        for doc in docs:
            for image in re.findall(r"'image': '([^']+)'", repr(doc)):
                if image_runtime(image) is None:
                    tag = image.rpartition("/")[2].partition(":")[2]
                    assert tag and tag != "latest", f"{overlay}: {image} is not pinned"


def test_dockerfiles_build_from_files_of_the_repository() -> None:
    images = dockerfiles()
    assert sorted(images) == sorted(LOCK_OF)
    for runtime, dockerfile in images.items():
        assert dockerfile_problems(dockerfile) == [], runtime
        assert dockerfile.locks == {f"requirements/{LOCK_OF[runtime]}"}, runtime
        # Every package of the image's extras is pinned by its lock.
        lock = lock_pins(LOCK_OF[runtime])
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for extra in dockerfile.extras:
            for requirement in extras[extra]:
                package = re.split(r"[\[<>=!~ ]", requirement)[0].lower().replace("_", "-")
                assert package in lock, f"{runtime}: {package} of [{extra}] not in the lock"
    spark = lock_pins("spark.lock")["pyspark"]
    for runtime in ("spark", "train", "horovod"):
        bases = [a.split()[0] for a in images[runtime].args_of("FROM")]
        assert f"apache/spark:{spark}-scala2.13-java17-ubuntu" in bases, runtime
    assert any("build_horovod.sh" in run for run in images["horovod"].args_of("RUN"))


def test_a_dockerfile_copying_a_missing_file_or_naming_an_unknown_extra_is_caught(
    tmp_path: Path,
) -> None:
    source = (ROOT / "deploy/images/serve.Dockerfile").read_text()
    broken = tmp_path / "serve.Dockerfile"
    broken.write_text(
        source.replace("COPY jobs /opt/rtrec/jobs", "COPY jobz /opt/rtrec/jobs")
        .replace("rtrec[serve,kafka,lake]", "rtrec[serve,kafka,lakes]")
        .replace("python:3.11-slim-bookworm AS wheel", "python AS wheel")
    )
    problems = dockerfile_problems(parse_dockerfile(broken))
    assert any("COPY source jobz does not exist" in p for p in problems), problems
    assert any("extra 'lakes'" in p for p in problems), problems
    assert any("base image python is not pinned" in p for p in problems), problems
