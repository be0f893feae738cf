"""Train, evaluate and register the sequential recommender from the gold tables (MLflow): the
single entry point for training. Backend, processes and epochs come from the `training`
config section (`--set training.backend=horovod`, ...).

Usage: spark-submit --master local[2] jobs/spark/train.py --env local
"""

import sys

from rtrec.jobs import run_job
from rtrec.training.job import run_train_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_train_job))
