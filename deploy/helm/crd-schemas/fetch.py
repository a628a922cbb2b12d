"""Vendor the operators' CRD schemas the chart's custom resources are validated against
(tests/unit/test_deploy_helm.py), so the test needs no network: `make crd-schemas`.

Each operator ships its CRDs as YAML in its Go module (CloudNativePG, KEDA, the
Prometheus operator: fetched from the Go module proxy, the module zip's CRD files).
Strimzi publishes no CRD file to a registry that works here: its `api` jar (Maven
Central) holds the annotated model classes Strimzi's own build turns into CRDs with its
`crd-generator` (same registry), so this script runs that generator (Maven resolves both,
Java runs it) on the API classes of Strimzi 0.51.0.

Written: one `<plural>.<group>.json` per CRD, `{"source", "kind", "versions": {version:
openAPIV3Schema}}` for the served versions the chart uses, descriptions dropped (size).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).parent
GO_PROXY = "https://proxy.golang.org"

# (module, version, path inside the module, served versions kept)
GO_MODULE_CRDS = [
    ("github.com/cloudnative-pg/cloudnative-pg", "v1.28.0",
     "config/crd/bases/postgresql.cnpg.io_clusters.yaml", ["v1"]),
    ("github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_scaledobjects.yaml", ["v1alpha1"]),
    ("github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_triggerauthentications.yaml",
     ["v1alpha1"]),
    ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml", ["v1"]),
    ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml", ["v1"]),
]

# Strimzi 0.51.0's API classes (Java 11 bytecode) and crd-generator 0.45.0, the newest
# generator on Maven Central that runs on this machine's Java 17 (1.x needs Java 21; the
# api 1.x classes too). v1 is the API version the chart uses (served since Strimzi 0.49,
# the only one from 1.0 on).
STRIMZI_API = "0.51.0"
STRIMZI_CRD_GENERATOR = "0.45.0"
STRIMZI_CLASSES = {
    "kafkas": "io.strimzi.api.kafka.model.kafka.Kafka",
    "kafkanodepools": "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "kafkatopics": "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "kafkausers": "io.strimzi.api.kafka.model.user.KafkaUser",
}
STRIMZI_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.alfi.platform</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>{STRIMZI_API}</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId>
      <version>{STRIMZI_CRD_GENERATOR}</version></dependency>
  </dependencies>
</project>
"""


def without_descriptions(node):  # noqa: ANN001, ANN201 - JSON values
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def write(crd: dict, keep: list[str], source: str) -> None:
    versions = {v["name"]: without_descriptions(v["schema"]["openAPIV3Schema"])
                for v in crd["spec"]["versions"] if v["name"] in keep and v.get("served")}
    missing = set(keep) - versions.keys()
    if missing:
        sys.exit(f"{crd['metadata']['name']}: no served version {sorted(missing)}")
    out = HERE / f"{crd['metadata']['name']}.json"
    out.write_text(json.dumps({"source": source, "kind": crd["spec"]["names"]["kind"], "versions": versions},
                              separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{out.relative_to(HERE.parent.parent.parent)}: {out.stat().st_size // 1024} KiB from {source}")


def go_module_crds() -> None:
    zips: dict[tuple[str, str], zipfile.ZipFile] = {}
    for module, version, path, keep in GO_MODULE_CRDS:
        if (module, version) not in zips:
            with urllib.request.urlopen(f"{GO_PROXY}/{module}/@v/{version}.zip", timeout=300) as answer:
                zips[module, version] = zipfile.ZipFile(io.BytesIO(answer.read()))
        crd = yaml.safe_load(zips[module, version].read(f"{module}@{version}/{path}"))
        write(crd, keep, f"{module}@{version}/{path}")


def strimzi_crds() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(STRIMZI_POM)
        subprocess.run(["mvn", "-q", "-B", "dependency:copy-dependencies", "-DoutputDirectory=lib"],
                       cwd=work, check=True)
        targets = [f"{cls}={work / plural}.yaml" for plural, cls in STRIMZI_CLASSES.items()]
        subprocess.run(["java", "-cp", str(work / "lib") + "/*", "io.strimzi.crdgenerator.CrdGenerator",
                        "--yaml", *targets], cwd=work, check=True, stderr=subprocess.DEVNULL)
        for plural in STRIMZI_CLASSES:
            crd = yaml.safe_load((work / f"{plural}.yaml").read_text())
            write(crd, ["v1"], f"io.strimzi:api:{STRIMZI_API} via io.strimzi:crd-generator:{STRIMZI_CRD_GENERATOR}")


if __name__ == "__main__":
    go_module_crds()
    strimzi_crds()
