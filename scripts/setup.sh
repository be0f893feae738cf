#!/usr/bin/env bash
# Idempotent bootstrap: system packages, one Python environment per runtime and the pinned JVM jars.
# Environments and jars live in a cache outside the checkout ($RTREC_CACHE, default
# ~/.cache/rtrec), keyed by the hash of what defines them (lock file / Maven manifest), so a
# changed pin builds a new one. An environment also holds this checkout installed editable, so
# its key includes the checkout's path: two clones never run each other's code, and a clone at
# the same path (CI) reuses it. Building one from uv's warm cache takes seconds (hard links).
# The checkout gets symlinks: .venvs/<runtime> and .jars/<group>.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${RTREC_CACHE:-$HOME/.cache/rtrec}
uv_version=0.13.9
python=${RTREC_PYTHON:-python3.11}
mvn_dependency_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
key_of() { cat "$@" | sha256sum | cut -c1-12; }

check_prerequisites() {
  command -v "$python" >/dev/null || die "Python 3.11 ($python) not found; install it or set RTREC_PYTHON"
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$python is not Python 3.11"
  command -v java >/dev/null || die "java not found: install a Java 17 JDK (Debian: openjdk-17-jdk-headless)"
  java -version 2>&1 | grep -qE 'version "(17|21)' || die "Java 17 or 21 is required (found: $(java -version 2>&1 | head -1))"
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: maven)"
}

install_system_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  # The dashboard's browser test drives Debian's Chromium (browser downloads are not reachable).
  command -v chromium >/dev/null || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "needs root to apt-get install ${missing[*]} (or install them yourself)"
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

install_uv() {
  uv_home=$cache/tools/uv-$uv_version
  if [ ! -x "$uv_home/bin/uv" ]; then
    say "installing uv $uv_version"
    rm -rf "$uv_home"
    "$python" -m venv "$uv_home"
    "$uv_home/bin/pip" install -q "uv==$uv_version"
  fi
  uv=$uv_home/bin/uv
  export UV_CACHE_DIR=$cache/uv-cache
  # Hardlinks from uv's cache fail across filesystems; copying is the safe fallback.
  export UV_LINK_MODE=${UV_LINK_MODE:-hardlink}
}

build_env() {  # name
  local name=$1 lock=requirements/$1.lock
  local env=$cache/envs/$name-$(key_of "$lock" <(echo "$python $("$python" -V 2>&1) $root"))
  if [ ! -f "$env/.rtrec-complete" ]; then
    say "creating the $name environment from $lock (new lock or checkout: seconds from a warm cache, minutes from a cold one)"
    rm -rf "$env"
    mkdir -p "$cache/envs"
    "$uv" venv -q --python "$(command -v "$python")" "$env"
    VIRTUAL_ENV=$env "$uv" pip sync -q --python "$env/bin/python" "$lock"
    echo "$root" > "$env/.rtrec-checkout"
    touch "$env/.rtrec-complete"
  fi
  # The project itself, editable, so jobs and Flink/Spark Python workers import this checkout.
  VIRTUAL_ENV=$env "$uv" pip install -q --no-deps --python "$env/bin/python" -e "$root"
  if [ "$name" = spark ]; then "$env/bin/python" -m rtrec.batch.runtime .jars/spark >/dev/null; fi
  mkdir -p .venvs
  ln -sfn "$env" ".venvs/$name"
}

resolve_jars() {  # group
  local group=$1 pom=jvm/$1/pom.xml
  local dir=$cache/jars/$group-$(key_of "$pom")
  if [ ! -f "$dir/.rtrec-complete" ]; then
    say "resolving $group jars from $pom (Maven Central)"
    rm -rf "$dir" "$dir.tmp"
    # scala-library is already on Spark's and Kafka's own classpath; a second copy only conflicts.
    mvn -B -q -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$cache/m2" "$mvn_dependency_plugin:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$dir.tmp" \
      $([ "$group" = spark ] && echo -DexcludeArtifactIds=scala-library) \
      || die "mvn could not resolve $pom (is Maven Central reachable?)"
    touch "$dir.tmp/.rtrec-complete"
    mv "$dir.tmp" "$dir"
  fi
  mkdir -p .jars
  ln -sfn "$dir" ".jars/$group"
}

install_horovod() {  # into the spark environment, from a wheel built once per torch
  local env; env=$(readlink -f .venvs/spark)
  [ -f "$env/.rtrec-horovod" ] && return
  local wheel; wheel=$(bash scripts/build_horovod.sh "$env/bin/python" "$uv")
  VIRTUAL_ENV=$env "$uv" pip install -q --no-deps --python "$env/bin/python" "$wheel"
  touch "$env/.rtrec-horovod"
}

prune_envs() {  # environments of checkouts that no longer exist
  local env
  for env in "$cache"/envs/*/; do
    [ -f "$env/.rtrec-checkout" ] && [ ! -d "$(cat "$env/.rtrec-checkout")" ] && rm -rf "$env"
  done
  return 0
}

start=$(date +%s)
check_prerequisites
install_system_packages
install_uv
for group in kafka flink spark; do resolve_jars "$group"; done
prune_envs
for name in ${RTREC_ENVS:-app flink spark}; do build_env "$name"; done
case " ${RTREC_ENVS:-app flink spark} " in *" spark "*) install_horovod ;; esac
say "done in $(( $(date +%s) - start )) s (cache: $cache)"
