"""Delta helpers every batch job shares: pinning a table's current version, and overwriting a
derived table stamped with the version of what it was computed from."""

from __future__ import annotations

from typing import Any

from rtrec.errors import RtrecError


def current_version(spark: Any, path: str, made_by: str) -> int:
    """The latest version of the Delta table at ``path``; a clear error naming the job that
    writes it (``made_by``) when there is none."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        raise RtrecError(f"no Delta table at {path}: run the {made_by} job first")
    return int(DeltaTable.forPath(spark, path).history(1).first()["version"])


def overwrite(frame: Any, path: str, version_column: str, version: int) -> None:
    """Replace the table at ``path`` by ``frame``, every row stamped ``version_column=version``."""
    from pyspark.sql import functions as F

    (
        frame.withColumn(version_column, F.lit(version))
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .save(path)
    )
