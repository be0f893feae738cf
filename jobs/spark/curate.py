"""Delta `bronze.events` -> `silver.events` (MERGE dedup by event_id, sessions) -> the gold
training tables `gold.item_catalogue`, `gold.user_sequences`, `gold.training_examples`.

Usage: spark-submit --master local[2] jobs/spark/curate.py --env local
"""

import sys

from rtrec.batch.curate import run_curate_job
from rtrec.jobs import run_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_curate_job))
