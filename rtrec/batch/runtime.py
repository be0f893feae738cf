"""The Spark runtime's defaults: which pinned jars go on the classpath, and Delta enabled.

`make setup` writes them to the spark environment's ``pyspark/conf/spark-defaults.conf`` (as a
cluster image would bake them in), so a plain ``spark-submit --master local[2] jobs/spark/x.py``
finds the Kafka source and Delta without extra flags.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_VERSION_SUFFIX = re.compile(r"-\d[^-]*(-[A-Za-z0-9]+)?\.jar$")

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def artifact_name(jar: Path) -> str:
    """``jackson-core-2.13.5.jar`` -> ``jackson-core``."""
    return _VERSION_SUFFIX.sub("", jar.name)


def extra_jars(resolved: Path, spark_jars: Path) -> list[Path]:
    """Resolved jars that Spark does not already ship: a second, older copy of a library Spark
    bundles (Jackson, Hadoop, Parquet, log4j ...) would shadow Spark's own and break it."""
    bundled = {artifact_name(jar) for jar in spark_jars.glob("*.jar")}
    return sorted(jar for jar in resolved.glob("*.jar") if artifact_name(jar) not in bundled)


def spark_defaults(resolved: Path, spark_home: Path, python: str) -> dict[str, str]:
    jars = extra_jars(resolved, spark_home / "jars")
    return {
        "spark.jars": ",".join(str(jar) for jar in jars),
        **DELTA_CONF,
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
    }


def write_spark_defaults(resolved: Path) -> Path:
    """Write spark-defaults.conf into this interpreter's pyspark installation."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    conf = spark_home / "conf" / "spark-defaults.conf"
    conf.parent.mkdir(exist_ok=True)
    # The environment lives in a shared cache; name its interpreter by its real path, not by a
    # checkout's .venvs symlink, so every clone reusing the environment gets a valid path.
    python = str(Path(sys.prefix).resolve() / "bin" / "python")
    lines = [f"{k} {v}" for k, v in spark_defaults(resolved.resolve(), spark_home, python).items()]
    conf.write_text(
        "# written by rtrec `make setup` (rtrec.batch.runtime)\n" + "\n".join(lines) + "\n"
    )
    return conf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jars_dir", type=Path, help="the resolved spark jars (.jars/spark)")
    print(write_spark_defaults(parser.parse_args().jars_dir))


if __name__ == "__main__":
    main()
