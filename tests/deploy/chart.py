"""The Helm chart rendered with the real Helm library (helm-python-sdk bundles Helm's
Go SDK, so no helm binary is needed), and the files generated from it.

    python -m tests.deploy.chart      # rewrite deploy/k8s/*.yaml and the config part
                                      # of helm/model-gateway/values.schema.json

The chart's schema checks `config` with the JSON schema of the gateway's own pydantic
model, so a mistyped config key fails at install time, not when the pod starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from gateway.config import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "model-gateway"
SCHEMA = CHART / "values.schema.json"
EXAMPLES = ROOT / "helm" / "examples"
MANIFESTS = ROOT / "deploy" / "k8s"
# The dashboard and the alerts live in deploy/; the chart ships copies (Helm reads no file
# outside its folder), kept equal by the tests.
SHIPPED = {ROOT / "deploy" / "grafana" / "model-gateway.json": CHART / "files" / "model-gateway.json",
           ROOT / "deploy" / "prometheus" / "alerts.yaml": CHART / "files" / "alerts.yaml"}

# Example values file -> the release it is rendered as for deploy/k8s/.
RELEASES = {"central": ("gateway", "ai-platform"), "sidecar": ("orders-assistant", "orders")}

# Helm's own install order, so the rendered files read like `helm template` output.
KIND_ORDER = ["NetworkPolicy", "PodDisruptionBudget", "ServiceAccount", "ConfigMap", "Service",
              "Deployment", "Job", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"]


def example_values(name: str) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return values


def render(values: Mapping[str, Any] | None = None, *, release: str = "gateway",
           namespace: str = "default") -> dict[str, str]:
    """Template path -> rendered text, as `helm template` makes it (schema checked)."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(dict(values) if values is not None else None, name=release,
                            namespace=namespace, is_install=True)


def objects(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return sorted(found, key=lambda o: (KIND_ORDER.index(o["kind"]), o["metadata"]["name"]))


def manifest(rendered: Mapping[str, str]) -> str:
    """One multi-document YAML file in install order, each object from its template."""
    files = [(path, text.strip()) for path, text in rendered.items()
             if path.endswith(".yaml") and text.strip()]
    files.sort(key=lambda file: _order(file[1]))
    return "".join(f"---\n# Source: {path}\n{text}\n" for path, text in files)


def _order(text: str) -> int:
    first = next(doc for doc in yaml.safe_load_all(text) if doc)
    return KIND_ORDER.index(first["kind"])


def example_manifest(name: str) -> str:
    release, namespace = RELEASES[name]
    header = (f"# Rendered from helm/examples/{name}.yaml as release {release!r} in namespace "
              f"{namespace!r}.\n# Do not edit: python -m tests.deploy.chart\n")
    return header + manifest(render(example_values(name), release=release, namespace=namespace))


def config_defs() -> dict[str, Any]:
    """The gateway config's JSON schema as $defs, `GatewayConfig` the entry point."""
    schema = GatewayConfig.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs")
    return {"GatewayConfig": schema, **defs}


def schema_with_current_config(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The chart schema with its config $defs replaced; hand-written $defs start lowercase."""
    own = {k: v for k, v in schema["$defs"].items() if k[:1].islower()}
    return {**schema, "$defs": {**own, **config_defs()}}


def main() -> None:
    for source, copy in SHIPPED.items():
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(source.read_bytes())
        print(f"wrote {copy.relative_to(ROOT)}")
    schema = json.loads(SCHEMA.read_text())
    SCHEMA.write_text(json.dumps(schema_with_current_config(schema), indent=2) + "\n")
    MANIFESTS.mkdir(exist_ok=True)
    for name in RELEASES:
        (MANIFESTS / f"{name}.yaml").write_text(example_manifest(name))
        print(f"wrote deploy/k8s/{name}.yaml")


if __name__ == "__main__":
    main()
