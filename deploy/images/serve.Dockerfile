# syntax=docker/dockerfile:1
# The serving runtime: the HTTP API (jobs/api.py), the online-store sync (jobs/online_store.py)
# and the MLflow server, with the rtrec wheel's [serve,kafka,lake] extras pinned by
# requirements/app.lock. No JVM.
# Build from a clean tree of the repository: deploy/images/build.sh serve

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv
FROM python:3.11-slim-bookworm AS wheel
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rtrec rtrec
RUN uv build --wheel --out-dir /dist .

FROM python:3.11-slim-bookworm
COPY --from=uv /uv /usr/local/bin/uv
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RTREC_ROOT=/opt/rtrec
COPY requirements/app.lock /tmp/rtrec/app.lock
COPY --from=wheel /dist /tmp/rtrec/dist
RUN uv venv --python /usr/local/bin/python3.11 /opt/venv \
 && uv pip install --python /opt/venv/bin/python --no-cache -c /tmp/rtrec/app.lock \
      "rtrec[serve,kafka,lake] @ file://$(ls /tmp/rtrec/dist/rtrec-*.whl)" \
 && rm -rf /tmp/rtrec \
 && useradd --system --uid 10001 --home-dir /opt/rtrec rtrec
COPY conf /opt/rtrec/conf
COPY jobs /opt/rtrec/jobs
USER 10001
WORKDIR /opt/rtrec
EXPOSE 8000 5000
