"""Kafka `rtrec.events` -> Delta `bronze.events`, checkpointed (exactly once).

Usage: spark-submit --master local[2] jobs/spark/ingest.py --env local
"""

import sys

from rtrec.batch.ingest import run_ingest_job
from rtrec.jobs import run_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_ingest_job))
