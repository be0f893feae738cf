# syntax=docker/dockerfile:1
# The training runtime with Horovod (training.backend=horovod): train.Dockerfile's image plus a
# Horovod 0.28.1 wheel built by scripts/build_horovod.sh against the locked torch (CPU ops over
# gloo; the build needs a compiler and CMake, which stay in the build stage).
# Build from a clean tree of the repository: deploy/images/build.sh horovod

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

FROM apache/spark:4.2.0-scala2.13-java17-ubuntu AS runtime
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
# setuptools comes along because Horovod builds without build isolation against this torch.
RUN uv venv --python 3.11 /opt/venv \
 && uv pip install --python /opt/venv/bin/python --no-cache -c /tmp/rtrec/spark.lock \
      "rtrec[spark,train] @ file://$(ls /tmp/rtrec/dist/rtrec-*.whl)" setuptools \
 && python -c "import shutil, sys; from pathlib import Path; from rtrec.batch.runtime import extra_jars; \
[shutil.copy(jar, sys.argv[2]) for jar in extra_jars(Path(sys.argv[1]), Path(sys.argv[2]))]" \
      /tmp/rtrec/jars "$SPARK_HOME/jars" \
 && rm -rf /tmp/rtrec

# --- Horovod, built against the runtime's own interpreter and torch ---
FROM runtime AS horovod-build
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends g++ make cmake \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/build_horovod.sh /tmp/build_horovod.sh
ENV RTREC_CACHE=/tmp/rtrec-cache
RUN mkdir /wheel && cp "$(bash /tmp/build_horovod.sh /opt/venv/bin/python /usr/local/bin/uv)" /wheel/

FROM runtime
COPY --from=horovod-build /wheel /tmp/horovod
# --no-deps: Horovod's [spark] extra would pull petastorm and pyarrow<11 (see pyproject.toml).
RUN uv pip install --python /opt/venv/bin/python --no-cache --no-deps /tmp/horovod/horovod-*.whl \
 && rm -rf /tmp/horovod
COPY conf /opt/rtrec/conf
COPY jobs /opt/rtrec/jobs
USER 185
