# syntax=docker/dockerfile:1
# The Flink runtime: the official Flink 2.2 image (JobManager/TaskManager, operator-compatible
# entrypoint) with Python 3.11, the rtrec wheel's [flink,scoring] extras pinned by
# requirements/flink.lock, the Kafka connector from jvm/flink/pom.xml and the job files.
# Build from a clean tree of the repository: deploy/images/build.sh flink

# --- the rtrec wheel (pure Python, built once from the checkout) ---
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv
FROM python:3.11-slim-bookworm AS wheel
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rtrec rtrec
RUN uv build --wheel --out-dir /dist .

# --- the pinned connector jars, resolved the way scripts/setup.sh does ---
FROM maven:3.9-eclipse-temurin-17 AS jars
COPY jvm/flink/pom.xml /jvm/pom.xml
RUN mvn -B -q -f /jvm/pom.xml org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/jars

# --- the runtime ---
FROM flink:2.2.1-scala_2.12-java17
COPY --from=uv /uv /usr/local/bin/uv
# The base is Ubuntu, whose Python is not 3.11: uv installs a standalone CPython 3.11 (runs on any
# glibc), and a venv on PATH is what PythonDriver and the Python workers start.
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RTREC_ROOT=/opt/rtrec
COPY requirements/flink.lock /tmp/rtrec/flink.lock
COPY --from=wheel /dist /tmp/rtrec/dist
# The lock is a constraint: only what the extras need is installed, at the locked versions.
RUN uv venv --python 3.11 /opt/venv \
 && uv pip install --python /opt/venv/bin/python --no-cache -c /tmp/rtrec/flink.lock \
      "rtrec[flink,scoring] @ file://$(ls /tmp/rtrec/dist/rtrec-*.whl)" \
 && rm -rf /tmp/rtrec
# usrlib is on the application's classpath in application mode, and conf/cluster.yaml's
# flink.jars_dir points there for pipeline.jars.
COPY --from=jars /jars/ /opt/flink/usrlib/
# conf/ is a fallback for running the image by hand; the manifests mount the ConfigMap over it.
COPY conf /opt/rtrec/conf
COPY jobs /opt/rtrec/jobs
