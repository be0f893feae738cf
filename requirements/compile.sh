#!/usr/bin/env bash
# Regenerates the per-runtime lock files from pyproject.toml's extras. Run after changing an extra;
# `make setup` only ever installs from the committed locks.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
compile() {  # name extras...
  local name=$1; shift
  local args=()
  for extra in "$@"; do args+=(--extra "$extra"); done
  "$uv" pip compile pyproject.toml "${args[@]}" --python-version 3.11 \
    --python-platform x86_64-unknown-linux-gnu --no-header --no-annotate -q -o "requirements/$name.lock"
}
compile flink flink scoring dev
compile spark spark train dev
compile app serve kafka lake ops dev
