#!/usr/bin/env bash
# Builds the runtime images from the committed tree (git archive: no .venvs, .run or jars of the
# checkout get into the build context) and tags them <registry>/rtrec-<runtime>:<tag>, the names
# deploy/k8s uses. Pushes when PUSH=1.
#
# Usage: deploy/images/build.sh [flink spark train horovod serve]
#        REGISTRY=registry.example.com/rtrec TAG=v1 PUSH=1 deploy/images/build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
registry=${REGISTRY:-rtrec}
tag=${TAG:-$(git rev-parse --short HEAD)}
runtimes=("$@")
[ ${#runtimes[@]} -gt 0 ] || runtimes=(flink spark train horovod serve)
for runtime in "${runtimes[@]}"; do
  dockerfile=deploy/images/$runtime.Dockerfile
  [ -f "$dockerfile" ] || { echo "no $dockerfile" >&2; exit 1; }
  image=$registry/rtrec-$runtime:$tag
  echo "[images] $image" >&2
  git archive --format=tar HEAD | docker build -f "$dockerfile" -t "$image" \
    --label org.opencontainers.image.revision="$(git rev-parse HEAD)" -
  if [ "${PUSH:-0}" = 1 ]; then docker push "$image"; fi
done
