# syntax=docker/dockerfile:1
# The training runtime (jobs/spark/train.py with TorchDistributor): the Spark runtime's layout
# (see spark.Dockerfile) with the rtrec wheel's [spark,train] extras pinned by
# requirements/spark.lock. torch from PyPI is the CUDA build and carries its CUDA libraries, so
# the same image trains on CPU executors (gloo) and on GPU executors (NCCL) once the node's
# NVIDIA device plugin exposes nvidia.com/gpu.
# Build from a clean tree of the repository: deploy/images/build.sh train

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv
FROM python:3.11-slim-bookworm AS wheel
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rtrec rtrec
RUN uv build --wheel --out-dir /dist .

FROM maven:3.9-eclipse-temurin-17 AS jars
COPY jvm/spark/pom.xml /jvm/pom.xml
RUN mvn -B -q -f /jvm/pom.xml org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/jars -DexcludeArtifactIds=scala-library

FROM apache/spark:4.2.0-scala2.13-java17-ubuntu
USER root
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/venv/bin/python \
    RTREC_ROOT=/opt/rtrec
COPY requirements/spark.lock /tmp/rtrec/spark.lock
COPY --from=wheel /dist /tmp/rtrec/dist
COPY --from=jars /jars /tmp/rtrec/jars
RUN uv venv --python 3.11 /opt/venv \
 && uv pip install --python /opt/venv/bin/python --no-cache -c /tmp/rtrec/spark.lock \
      "rtrec[spark,train] @ file://$(ls /tmp/rtrec/dist/rtrec-*.whl)" \
 && python -c "import shutil, sys; from pathlib import Path; from rtrec.batch.runtime import extra_jars; \
[shutil.copy(jar, sys.argv[2]) for jar in extra_jars(Path(sys.argv[1]), Path(sys.argv[2]))]" \
      /tmp/rtrec/jars "$SPARK_HOME/jars" \
 && rm -rf /tmp/rtrec
COPY conf /opt/rtrec/conf
COPY jobs /opt/rtrec/jobs
USER 185
