"""Online item-item collaborative filtering from `rtrec.events` (Flink).

Usage: python jobs/flink/online_cf.py --env local
"""

import sys

from rtrec.jobs import run_job
from rtrec.streaming.online_cf import run_online_cf_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_online_cf_job))
