"""``gold.bought_together`` -> the compacted ``rtrec.bought_together`` topic, from which the
online-store sync fills Redis for ``GET /v1/items/{id}/bought-together`` (the API reads only the
store). One record per item, keyed by the item id: a rerun rewrites the same keys."""

from __future__ import annotations

from rtrec.batch.curate import BOUGHT_TOGETHER
from rtrec.config import Settings
from rtrec.schema.events import ITEM_ID

JOB = "publish-bought-together"


def run_publish_bought_together_job(settings: Settings) -> int:
    """Publish the table's current version; returns how many items were published."""
    from pyspark.sql import functions as F

    from rtrec.batch.delta import current_version
    from rtrec.batch.session import create_spark_session

    spark = create_spark_session(settings, JOB)
    path = settings.lake.table_path(*BOUGHT_TOGETHER)
    version = current_version(spark, path, "curate")
    table = spark.read.format("delta").option("versionAsOf", version).load(path)
    records = table.select(
        F.col(ITEM_ID).alias("key"), F.to_json(F.struct(*table.columns)).alias("value")
    ).cache()
    (
        records.write.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("topic", settings.kafka.topics.bought_together)
        .save()
    )
    count = int(records.count())
    print(f"published {count} items of {'.'.join(BOUGHT_TOGETHER)}@{version}")
    return count
