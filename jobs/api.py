"""The HTTP API (FastAPI on uvicorn): recommendations and related items from the online store,
events to Kafka. Listens on serving.host:serving.port.

Usage: python jobs/api.py --env local
"""

import sys

from rtrec.jobs import run_job
from rtrec.serving.api import run_api

if __name__ == "__main__":
    sys.exit(run_job(__doc__ or "", run_api))
