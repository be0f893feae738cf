"""Real-time scoring (Flink): each interaction becomes the user's fresh top-K, from the online
CF scores, the champion model (hot-swapped on `rtrec.model_control`), trending and content
neighbours, to the `rtrec.recommendations` upsert topic.

Usage: python jobs/flink/scoring.py --env local
"""

import sys

from rtrec.jobs import run_job
from rtrec.streaming.scoring import run_scoring_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_scoring_job))
