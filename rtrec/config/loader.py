"""Layered configuration: conf/base.yaml -> conf/<env>.yaml -> RTREC__* env variables -> --set.

Every leaf remembers which layer set it, so a validation error names the file (or variable, or
``--set``) and the dotted key that is wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rtrec.config.settings import Settings

ENV_PREFIX = "RTREC__"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Keys whose values are filesystem paths, resolved against the project root.
_PATH_KEYS = {
    ("flink", "checkpoint_dir"),
    ("flink", "jars_dir"),
    ("lake", "root"),
    ("lake", "checkpoint_root"),
    ("local_services", "run_dir"),
}


class ConfigError(ValueError):
    """A configuration problem, phrased as ``<source>: <key>: <problem>``."""


def project_root() -> Path:
    """The checkout (or installed tree) holding conf/: RTREC_ROOT, else next to this package."""
    env_root = os.environ.get("RTREC_ROOT")
    if env_root:
        return Path(env_root).resolve()
    return Path(__file__).resolve().parents[2]


def load_settings(
    env: str = "local",
    overrides: Iterable[str] = (),
    conf_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load and validate the settings for ``env``; raises ConfigError naming file and key."""
    root = project_root()
    conf = conf_dir or root / "conf"
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}

    for path in (conf / "base.yaml", conf / f"{env}.yaml"):
        if not path.exists():
            raise ConfigError(f"{path}: no such config file (environments: {_envs(conf)})")
        layer = _read_yaml(path)
        _merge(merged, _substitute(layer, str(path), (), environ), sources, str(path), ())

    for name, value in sorted(environ.items()):
        if name.startswith(ENV_PREFIX):
            keys = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
            _set_path(merged, sources, keys, yaml.safe_load(value), f"environment {name}")

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value")
        key, value = item.split("=", 1)
        _set_path(merged, sources, tuple(key.strip().split(".")), yaml.safe_load(value), "--set")

    for keys in _PATH_KEYS:
        _resolve_path(merged, keys, root)
    merged["env"] = env
    merged["root"] = root
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources, conf / f"{env}.yaml")) from None


def _envs(conf: Path) -> str:
    return ", ".join(sorted(p.stem for p in conf.glob("*.yaml") if p.stem != "base")) or "none"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _substitute(node: Any, source: str, keys: tuple[str, ...], environ: Mapping[str, str]) -> Any:
    """Expand ${VAR} and ${VAR:-default} in string values."""
    if isinstance(node, dict):
        return {k: _substitute(v, source, (*keys, str(k)), environ) for k, v in node.items()}
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{source}: {'.'.join(keys)}: environment variable {name} is not set")

    expanded = _PLACEHOLDER.sub(replace, node)
    # A whole-value placeholder takes the YAML type of what it expands to (ports, counts).
    return yaml.safe_load(expanded) if _PLACEHOLDER.fullmatch(node) else expanded


def _merge(
    into: dict[str, Any],
    layer: Mapping[str, Any],
    sources: dict[tuple[str, ...], str],
    source: str,
    prefix: tuple[str, ...],
) -> None:
    for key, value in layer.items():
        keys = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, sources, source, keys)
        else:
            into[key] = value
        sources[keys] = source


def _set_path(
    into: dict[str, Any],
    sources: dict[tuple[str, ...], str],
    keys: tuple[str, ...],
    value: Any,
    source: str,
) -> None:
    node = into
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {'.'.join(keys[: depth + 1])}: is not a section")
        node = child
    node[keys[-1]] = value
    sources[keys] = source


def _resolve_path(merged: dict[str, Any], keys: tuple[str, ...], root: Path) -> None:
    node: Any = merged
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and isinstance(node.get(keys[-1]), str | Path):
        value = str(node[keys[-1]])
        # URIs (s3://, hdfs://, file://) are left alone; only plain relative paths are anchored.
        if "://" not in value:
            node[keys[-1]] = str((root / value).resolve())


def _describe(exc: ValidationError, sources: Mapping[tuple[str, ...], str], env_file: Path) -> str:
    lines = []
    for error in exc.errors():
        keys = tuple(str(part) for part in error["loc"])
        source = _source_of(keys, sources) or str(env_file)
        problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        if error["type"] == "missing":
            problem = "required key is missing"
        lines.append(f"{source}: {'.'.join(keys)}: {problem}")
    return "; ".join(lines)


def _source_of(keys: tuple[str, ...], sources: Mapping[tuple[str, ...], str]) -> str | None:
    for depth in range(len(keys), 0, -1):
        if keys[:depth] in sources:
            return sources[keys[:depth]]
    return None
