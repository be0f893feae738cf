"""The SparkSession every batch job starts from (PySpark imported lazily)."""

from __future__ import annotations

import os
import sys
from typing import Any

from rtrec.config import Settings
from rtrec.errors import RtrecError


def create_spark_session(settings: Settings, app: str) -> Any:
    """A session with Delta enabled. The master comes from spark-submit (or defaults to local)."""
    from pyspark.sql import SparkSession

    # Workers must run the driver's interpreter (the one holding rtrec and the pinned pyarrow).
    # spark-submit sets this from spark.pyspark.python; an in-process session would not.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(f"{settings.spark.app_name}-{app}")
    builder = builder.config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    for key, value in settings.spark.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if "DeltaSparkSessionExtension" not in spark.conf.get("spark.sql.extensions", ""):
        raise RtrecError(
            "Delta is not enabled in this Spark runtime (spark-defaults.conf): run `make setup`"
        )
    return spark
