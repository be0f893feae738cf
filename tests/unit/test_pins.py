"""The pinned Python locks and JVM manifests agree with each other (a mismatch fails at run
time, deep inside a JVM, so it is caught here instead)."""

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / f"{name}.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def jars(group: str) -> dict[str, str]:
    pom = ET.parse(ROOT / "jvm" / group / "pom.xml")
    return {
        dep.findtext("m:artifactId", namespaces=POM_NS): dep.findtext(
            "m:version", namespaces=POM_NS
        )
        for dep in pom.iterfind(".//m:dependency", POM_NS)
    }


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_flink_connector_is_built_for_the_pinned_pyflink() -> None:
    pyflink = lock("flink")["apache-flink"]
    connector = jars("flink")["flink-sql-connector-kafka"]
    assert connector.rsplit("-", 1)[1] == major_minor(pyflink)
    assert lock("flink")["apache-flink-libraries"] == pyflink


def test_spark_kafka_source_matches_pyspark_exactly() -> None:
    pyspark = lock("spark")["pyspark"]
    assert jars("spark")["spark-sql-kafka-0-10_2.13"] == pyspark


def test_delta_jars_match_delta_spark_and_the_spark_line() -> None:
    spark_jars = jars("spark")
    delta_artifact = next(a for a in spark_jars if a.startswith("delta-spark_"))
    # Delta 4.4 publishes one artifact per Spark line: delta-spark_<spark major.minor>_<scala>.
    spark_line = delta_artifact.split("_")[1]
    assert spark_line == major_minor(lock("spark")["pyspark"])
    assert spark_jars[delta_artifact] == lock("spark")["delta-spark"]


def test_scala_binary_versions_agree() -> None:
    suffixes = {a.rsplit("_", 1)[1] for g in ("kafka", "spark") for a in jars(g) if "_2." in a}
    assert suffixes == {"2.13"}


def test_kafka_broker_is_4x() -> None:
    assert jars("kafka")["kafka_2.13"].startswith("4.")


def test_shared_packages_have_one_version_across_runtimes() -> None:
    locks = {name: lock(name) for name in ("app", "flink", "spark")}
    for package in ("confluent-kafka", "pydantic", "pyyaml"):
        versions = {name: pins[package] for name, pins in locks.items() if package in pins}
        assert len(set(versions.values())) == 1, (package, versions)
    assert "mlflow" in locks["app"]


def test_locks_honour_the_pins_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for runtime, extra in (("flink", "flink"), ("spark", "spark"), ("app", "serve")):
        for requirement in extras[extra]:
            match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)$", requirement)
            if match:
                assert lock(runtime)[match.group(1).lower()] == match.group(3), requirement


def test_flink_runtime_keeps_the_pins_pyflink_needs() -> None:
    pins = lock("flink")
    # apache-beam (pulled by PyFlink) caps these; a drift means the lock was not regenerated.
    assert int(pins["pyarrow"].split(".")[0]) < 17
    assert tuple(int(p) for p in pins["numpy"].split(".")[:2]) < (2, 2)
    assert pins["py4j"] == "0.10.9.7"
