"""Delta `bronze.events` -> Delta `gold.user_features` / `gold.item_features`: the batch twin
of the streaming behaviour features, with the stream's late decisions from its ledger.

Usage: spark-submit --master local[2] jobs/spark/backfill_features.py --env local
"""

import sys

from rtrec.batch.backfill import run_backfill_features_job
from rtrec.jobs import run_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_backfill_features_job))
