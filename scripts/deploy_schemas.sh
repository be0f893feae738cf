#!/usr/bin/env bash
# Regenerates deploy/schemas/: JSON schemas of the custom resources that deploy/k8s uses, so the
# manifest tests (tests/unit/test_deploy.py) validate them offline. Run it after changing an
# operator version below; it needs Maven Central and PyPI, Java 17 and `make setup`'s app env.
#
#   FlinkDeployment          the CRD in org.apache.flink:flink-kubernetes-operator-api (fabric8)
#   Kafka, KafkaNodePool,    generated from io.strimzi:api by io.strimzi:crd-generator, the way
#   KafkaTopic               Strimzi builds its own CRDs
#   SparkApplication,        pydantic models of PyPI kubeflow-spark-api (the Spark operator's
#   ScheduledSparkApplication  published API), installed into a throwaway environment only
#
# Kubernetes prunes unknown fields of a CRD object silently, so a misspelt field would deploy and
# do nothing. The schemas are made closed instead: every object schema that lists its properties
# (and does not preserve unknown fields) gets additionalProperties: false. Descriptions are
# dropped to keep the committed files small.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${RTREC_CACHE:-$HOME/.cache/rtrec}
uv=$cache/tools/uv-0.13.9/bin/uv
python=$root/.venvs/app/bin/python
flink_operator=1.10.0
strimzi=0.45.0
spark_operator_api=2.4.0
mvn_dependency_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
say() { printf '[deploy_schemas] %s\n' "$*" >&2; }
[ -x "$uv" ] && [ -x "$python" ] || { say "error: run \`make setup\` first (needs uv and .venvs/app)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mvn_() { mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$cache/m2" "$@"; }

say "FlinkDeployment CRD from flink-kubernetes-operator-api $flink_operator"
mvn_ -f "$root/jvm/flink/pom.xml" "$mvn_dependency_plugin:copy" \
  -Dartifact="org.apache.flink:flink-kubernetes-operator-api:$flink_operator" -DoutputDirectory="$work/flink"
unzip -q -o "$work/flink/flink-kubernetes-operator-api-$flink_operator.jar" \
  META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml -d "$work/flink"
mv "$work/flink/META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml" "$work/flinkdeployment.crd.yaml"

say "Strimzi $strimzi CRDs (crd-generator)"
mkdir -p "$work/strimzi"
cat > "$work/strimzi/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rtrec.deploy</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$strimzi</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$strimzi</version></dependency>
  </dependencies>
</project>
POM
mvn_ -f "$work/strimzi/pom.xml" "$mvn_dependency_plugin:copy-dependencies" \
  -DincludeScope=runtime -DoutputDirectory="$work/strimzi/lib"
java -cp "$work/strimzi/lib/*" io.strimzi.crdgenerator.CrdGenerator \
  --crd-api-version v1 --api-versions v1beta2 --storage-version v1beta2 --yaml \
  io.strimzi.api.kafka.model.kafka.Kafka="$work/kafka.crd.yaml" \
  io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$work/kafkanodepool.crd.yaml" \
  io.strimzi.api.kafka.model.topic.KafkaTopic="$work/kafkatopic.crd.yaml" 2>/dev/null

say "SparkApplication and ScheduledSparkApplication from kubeflow-spark-api $spark_operator_api"
"$uv" venv -q --python "$python" "$work/spark-api"
"$uv" pip install -q --python "$work/spark-api/bin/python" "kubeflow-spark-api==$spark_operator_api"
"$work/spark-api/bin/python" - "$work" <<'PY'
import json
import sys

from kubeflow_spark_api.models.spark_v1beta2_scheduled_spark_application import (
    SparkV1beta2ScheduledSparkApplication,
)
from kubeflow_spark_api.models.spark_v1beta2_spark_application import SparkV1beta2SparkApplication

for name, model in {
    "sparkapplication": SparkV1beta2SparkApplication,
    "scheduledsparkapplication": SparkV1beta2ScheduledSparkApplication,
}.items():
    with open(f"{sys.argv[1]}/{name}.pydantic.json", "w") as out:
        json.dump(model.model_json_schema(by_alias=True), out)
PY

say "writing deploy/schemas"
"$python" - "$work" "$root/deploy/schemas" "$flink_operator" "$strimzi" "$spark_operator_api" <<'PY'
import json
import sys
from pathlib import Path

import yaml

work, out = Path(sys.argv[1]), Path(sys.argv[2])
flink_operator, strimzi, spark_api = sys.argv[3:6]
DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Kept out of the committed files: prose, and pydantic's titles and null defaults.
DROPPED = {"description", "title", "default"}


def closed(node):
    """The schema with every object that lists its properties closed to unknown ones."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {k: closed(v) for k, v in node.items() if k not in DROPPED}
    # Only typed objects: the property lists inside oneOf/anyOf branches are partial.
    if (
        result.get("type") == "object"
        and "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def crd_schema(path, version):
    crd = yaml.safe_load(path.read_text())
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            return f"{group}/{version}", kind, served["schema"]["openAPIV3Schema"]
    raise SystemExit(f"{path}: no version {version}")


index = []


def write(name, api_version, kind, schema, source):
    # Kubernetes adds these to every custom resource's schema itself (some CRDs omit them);
    # pinned here, so a document is checked against the schema of its own kind and version.
    schema["properties"].update(
        apiVersion={"type": "string", "enum": [api_version]},
        kind={"type": "string", "enum": [kind]},
    )
    schema["properties"].setdefault("metadata", {"type": "object"})
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    schema = {"$schema": DRAFT, "$comment": f"{api_version} {kind} from {source}", **closed(schema)}
    (out / f"{name}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    index.append({"apiVersion": api_version, "kind": kind, "file": f"{name}.json", "source": source})


api_version, kind, schema = crd_schema(work / "flinkdeployment.crd.yaml", "v1beta1")
# The newest operator API on Maven Central (1.10.0) predates Flink 2; the pinned runtime is
# Flink 2.2, so its version names are added to the enum (an operator that lists v2_2 is needed).
versions = schema["properties"]["spec"]["properties"]["flinkVersion"]["enum"]
versions += [v for v in ("v2_0", "v2_1", "v2_2") if v not in versions]
write("flinkdeployment", api_version, kind, schema,
      f"org.apache.flink:flink-kubernetes-operator-api:{flink_operator} (+ flinkVersion v2_0..v2_2)")
for name in ("kafka", "kafkanodepool", "kafkatopic"):
    api_version, kind, schema = crd_schema(work / f"{name}.crd.yaml", "v1beta2")
    write(name, api_version, kind, schema, f"io.strimzi:crd-generator + io.strimzi:api:{strimzi}")
for name, kind in (("sparkapplication", "SparkApplication"),
                   ("scheduledsparkapplication", "ScheduledSparkApplication")):
    schema = json.loads((work / f"{name}.pydantic.json").read_text())
    write(name, "sparkoperator.k8s.io/v1beta2", kind, schema, f"PyPI kubeflow-spark-api=={spark_api}")
(out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
PY
say "done: $(ls "$root/deploy/schemas" | tr '\n' ' ')"
