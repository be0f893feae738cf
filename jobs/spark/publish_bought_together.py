"""Delta `gold.bought_together` -> Kafka `rtrec.bought_together` (compacted), for the online
store and the API's bought-together route.

Usage: spark-submit --master local[2] jobs/spark/publish_bought_together.py --env local
"""

import sys

from rtrec.batch.publish import run_publish_bought_together_job
from rtrec.jobs import run_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_publish_bought_together_job))
