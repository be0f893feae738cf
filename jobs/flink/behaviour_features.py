"""Per-user behaviour features from `rtrec.events` (Flink).

Usage: python jobs/flink/behaviour_features.py --env local
"""

import sys

from rtrec.jobs import run_job
from rtrec.streaming.behaviour_features import run_behaviour_features_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_behaviour_features_job))
