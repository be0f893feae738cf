"""Keep Redis (the online store) equal to the feature, neighbour and CF upsert topics.

Usage: python jobs/online_store.py --env local
"""

import sys

from rtrec.jobs import run_job
from rtrec.serving.online_store import run_online_store_sync

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_online_store_sync))
