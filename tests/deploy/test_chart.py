"""The Helm chart, rendered and linted with the real Helm library, every object checked
against the Kubernetes schemas (kubernetes-validate), every embedded config checked by
`model-gateway check`, and the example manifests in deploy/k8s/ kept equal to it."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.conftest import GATEWAY, free_port, wait_up
from tests.deploy import chart

VALUE_SETS = ["default", "central", "sidecar"]
# ServiceMonitor is prometheus-operator's CRD: not in the Kubernetes schemas, so it is
# checked below against the Service it selects instead.
CRDS = {"ServiceMonitor", "PrometheusRule"}
# What the referenced Secrets would hold, where the gateway checks the form.
SECRET_VALUES = {"MODEL_GATEWAY_REDIS__URL": "rediss://:access-key@contoso.redis.cache.windows.net:6380/0",
                 "MODEL_GATEWAY_DATABASE__URL": "postgresql://gateway@contoso.postgres.database.azure.com/gateway"}


def values_for(name: str) -> dict[str, Any] | None:
    return None if name == "default" else chart.example_values(name)


def rendered(name: str, **overrides: Any) -> list[dict[str, Any]]:
    values = copy.deepcopy(values_for(name)) or {}
    for dotted, value in overrides.items():
        *parents, last = dotted.split("__")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return chart.objects(chart.render(values))


def is_hook(obj: dict[str, Any]) -> bool:
    return "helm.sh/hook" in obj["metadata"].get("annotations", {})


def one(objects: list[dict[str, Any]], kind: str, hook: bool = False) -> dict[str, Any]:
    """The one object of `kind`: of the release's own, or with `hook` of its hooks. The
    ConfigMap is the gateway's config (not the dashboard's)."""
    [found] = [o for o in objects if o["kind"] == kind and is_hook(o) == hook
               and not o["metadata"]["name"].endswith("-dashboard")]
    return found


def gateway_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    [gateway] = [c for c in pod.get("initContainers", []) + pod["containers"]
                 if c["name"] == "gateway"]
    return gateway


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        chart.render(values)
    return str(caught.value)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_reports_no_errors(name: str) -> None:
    assert f">={KUBERNETES[0]}" in (chart.CHART / "Chart.yaml").read_text()
    report = helm.lint(chart.CHART, values_for(name), strict=False)
    errors = [m for m in report["messages"] if m["severity"] >= 3]
    assert report["errors"] == [] and errors == [], report


# The oldest Kubernetes the chart supports (native sidecars, the preStop sleep
# action) and the newest the validator knows.
KUBERNETES = ["1.30.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_validates_against_the_kubernetes_schemas(name: str, version: str) -> None:
    objects = rendered(name)
    assert objects
    for obj in objects:
        if obj["kind"] in CRDS:
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_validation_is_not_vacuous() -> None:
    deployment = one(rendered("central"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def check_in_pod(objects: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`model-gateway check` on the rendered ConfigMap, with the environment the pod gets:
    every variable the chart sets (Secret-backed ones hold stand-ins; the real values
    live in the cluster) and none of this machine's that the config could name."""
    text = one(objects, "ConfigMap")["data"]["config.yaml"]
    config = tmp_path / "config.yaml"
    config.write_text(text)
    named = {b["auth"].get("key_env") for d in yaml.safe_load(text)["deployments"]
             for b in d["backends"] if "auth" in b}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MODEL_GATEWAY_") and k not in named}
    for var in gateway_container(objects).get("env", []):
        env[var["name"]] = var.get("value", SECRET_VALUES.get(var["name"], "secret-value"))
    return subprocess.run([*GATEWAY, "check", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_embedded_config_passes_model_gateway_check(name: str, tmp_path: Path) -> None:
    # Passing also proves every key_env of the config is wired to a Secret.
    result = check_in_pod(rendered(name), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config OK" in result.stdout


def test_an_unwired_upstream_key_fails_the_check(tmp_path: Path) -> None:
    result = check_in_pod(rendered("central", secretEnv=[]), tmp_path)
    assert result.returncode == 1 and "WEST_KEY" in result.stdout


@pytest.mark.parametrize("name", ["central", "sidecar"])
def test_example_manifests_are_the_charts_output(name: str) -> None:
    committed = (chart.MANIFESTS / f"{name}.yaml").read_text()
    assert committed == chart.example_manifest(name), (
        f"deploy/k8s/{name}.yaml drifted from the chart: run python -m tests.deploy.chart")


def test_chart_schema_carries_the_current_config_schema() -> None:
    schema = json.loads(chart.SCHEMA.read_text())
    assert schema == chart.schema_with_current_config(schema), (
        "values.schema.json is behind the config models: run python -m tests.deploy.chart")


@pytest.mark.parametrize(("values", "names"), [
    ({"mode": "edge"}, "mode"),
    ({"replicaCount": "three"}, "replicaCount"),
    ({"image": {"repository": ""}}, "repository"),
    ({"workloadIdentity": {"enabled": True}}, "clientId"),
    ({"secretEnv": [{"name": "WEST KEY", "secretName": "s", "key": "k"}]}, "name"),
    ({"config": {"deployments": [{"name": "x", "model": "x", "backends": [
        {"url": "https://a.example", "api": "openai"}]}], "consumer": []}}, "consumer"),
    ({"config": {"deployments": [{"name": "x", "model": "x", "limits": {
        "tokens_per_minut": 5}, "backends": [{"url": "https://a.example", "api": "openai"}]}]}},
     "tokens_per_minut"),
    ({"config": {"deployments": [{"name": "x", "model": "x", "backends": [
        {"url": "https://a.example", "api": "bedrock"}]}]}}, "api"),
])
def test_wrong_values_fail_at_install_with_a_message_naming_them(
        values: dict[str, Any], names: str) -> None:
    message = render_error(values)
    assert "schema" in message and names in message, message


def test_every_value_is_commented() -> None:
    # A key is documented by a comment right above it, or by belonging to a run of
    # sibling keys under one. The gateway's `config` is documented with the gateway.
    lines = (chart.CHART / "values.yaml").read_text().splitlines()
    undocumented, documented_indent, skip_below = [], -1, -1
    previous = ""
    for line in lines:
        if not line.strip():
            documented_indent = -1
            continue
        indent = len(line) - len(line.lstrip())
        if skip_below >= 0 and indent > skip_below:
            continue
        skip_below = -1
        stripped = line.strip()
        if stripped.startswith("#"):
            documented_indent = indent
        elif ":" in stripped and not stripped.startswith("-"):
            if not (previous.startswith("#") or documented_indent == indent):
                undocumented.append(stripped)
            documented_indent = indent
            if stripped.startswith("config:"):
                skip_below = indent
        previous = stripped
    assert undocumented == []


def test_central_mode_objects() -> None:
    objects = rendered("central")
    assert [o["kind"] for o in objects if not is_hook(o)] == [
        "NetworkPolicy", "PodDisruptionBudget", "ServiceAccount", "ConfigMap", "ConfigMap",
        "Service", "Deployment", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"]
    assert [o["kind"] for o in objects if is_hook(o)] == ["ConfigMap", "Job"]
    deployment = one(objects, "Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    # The Service, the ServiceMonitor and the PDB select exactly the gateway's pods.
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels.items())
    policy = one(objects, "NetworkPolicy")["spec"]
    assert policy["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert policy["policyTypes"] == ["Ingress"]


def test_gateway_container_is_restricted_and_probed() -> None:
    objects = rendered("central")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    gateway = gateway_container(objects)
    security = gateway["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"name": "admin", "containerPort": 9090, "protocol": "TCP"}]
    assert gateway["args"][:3] == ["serve", "--config", "/etc/model-gateway/config.yaml"]
    assert {"name": "config", "mountPath": "/etc/model-gateway", "readOnly": True} in (
        gateway["volumeMounts"])
    assert gateway["resources"]["requests"]["cpu"] == "250m"
    # Secrets by reference only: the Redis URL, the database's URL and password, the
    # upstream key.
    env = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in gateway["env"] if "valueFrom" in v}
    assert env == {"WEST_KEY": {"name": "azure-openai-keys", "key": "westeurope"},
                   "MODEL_GATEWAY_REDIS__URL": {"name": "model-gateway-redis", "key": "url"},
                   "MODEL_GATEWAY_DATABASE__URL": {"name": "model-gateway-postgres", "key": "url"},
                   "MG_DATABASE_PASSWORD": {"name": "model-gateway-postgres", "key": "password"}}
    # The migration Job's container is as restricted.
    [migrate] = one(objects, "Job", hook=True)["spec"]["template"]["spec"]["containers"]
    assert migrate["securityContext"] == security


def test_termination_grace_outlasts_prestop_and_drain() -> None:
    objects = rendered("central")  # drain_seconds 60, preStop 5
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert gateway_container(objects)["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert pod["terminationGracePeriodSeconds"] == 75
    assert one(rendered("central", terminationGracePeriodSeconds=120), "Deployment")[
        "spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    values = chart.example_values("central") | {"terminationGracePeriodSeconds": 65}
    assert "must be longer than" in render_error(values)


def test_config_change_rolls_the_pods() -> None:
    def checksum(objects: list[dict[str, Any]]) -> str:
        annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    before = checksum(rendered("central"))
    assert before == checksum(rendered("central"))
    assert before != checksum(rendered("central", config__server={
        "host": "0.0.0.0", "port": 8080, "drain_seconds": 30}))


def test_workload_identity_annotates_the_account_and_labels_the_pods() -> None:
    objects = rendered("central")
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": "00000000-0000-0000-0000-00000000c1d0",
        "azure.workload.identity/tenant-id": "11111111-1111-1111-1111-111111111111"}
    pod = one(objects, "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    plain = rendered("default")
    assert "azure.workload.identity/use" not in one(plain, "Deployment")["spec"]["template"][
        "metadata"]["labels"]
    assert "annotations" not in one(plain, "ServiceAccount")["metadata"]


def test_sidecar_mode_is_a_native_sidecar_on_loopback() -> None:
    objects = rendered("sidecar")
    assert [o["kind"] for o in objects] == ["ServiceAccount", "ConfigMap", "Deployment"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    [gateway] = pod["initContainers"]
    assert gateway["name"] == "gateway" and gateway["restartPolicy"] == "Always"
    # The application starts only once the gateway answers /readyz.
    assert gateway["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert [c["name"] for c in pod["containers"]] == ["app"]
    app_env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert app_env["OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1"
    config = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    assert config["server"]["host"] == "127.0.0.1" and config["auth"]["allow_anonymous"]
    assert "redis" not in config and "lifecycle" not in gateway


def test_sidecar_mode_refuses_a_gateway_reachable_from_outside_the_pod() -> None:
    values = chart.example_values("sidecar")
    values["config"]["server"]["host"] = "0.0.0.0"
    assert "config.server.host must be 127.0.0.1" in render_error(values)
    values = chart.example_values("sidecar")
    values["sidecar"]["application"]["containers"] = []
    assert "containers" in render_error(values)


def test_central_mode_refuses_a_gateway_only_its_own_pod_can_reach() -> None:
    values = chart.example_values("central")
    values["config"]["server"]["host"] = "127.0.0.1"
    assert "central mode: config.server.host is a loopback address" in render_error(values)


def test_limits_across_replicas_need_redis() -> None:
    values = chart.example_values("central")
    del values["redis"]
    message = render_error(values)
    assert "redis" in message and "shared" in message
    values["autoscaling"]["enabled"] = False
    values["replicaCount"] = 1
    assert one(chart.objects(chart.render(values)), "Deployment")["spec"]["replicas"] == 1


def pod_process(name: str, tmp_path: Path, env: dict[str, str],
                background: list[subprocess.Popen[str]]) -> tuple[subprocess.Popen[str], int]:
    """The gateway container of the rendered pod as a process: its args, its config file
    from the ConfigMap, its environment; only the port is moved off 8080."""
    objects = rendered(name)
    mount = tmp_path / "etc-model-gateway"
    mount.mkdir()
    (mount / "config.yaml").write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
    container = gateway_container(objects)
    args = [str(mount / "config.yaml") if a == "/etc/model-gateway/config.yaml" else a
            for a in container["args"]]
    port = free_port()
    proc = subprocess.Popen(
        [*GATEWAY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env, "MODEL_GATEWAY_SERVER__PORT": str(port)})
    background.append(proc)
    return proc, port


def workload_identity_env(tmp_path: Path) -> dict[str, str]:
    """What the workload identity webhook injects into a labelled pod."""
    token = tmp_path / "azure-identity-token"
    token.write_text("federated-token-from-the-kubelet")
    return {"AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000051de",
            "AZURE_TENANT_ID": "11111111-1111-1111-1111-111111111111",
            "AZURE_FEDERATED_TOKEN_FILE": str(token),
            "AZURE_AUTHORITY_HOST": "https://127.0.0.1:9/"}


def test_sidecar_pod_answers_its_probes_and_drains_within_the_grace_period(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    objects = rendered("sidecar")
    container = gateway_container(objects)
    proc, port = pod_process("sidecar", tmp_path, workload_identity_env(tmp_path), background)
    base = f"http://127.0.0.1:{port}"
    wait_up(base, proc)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        with urllib.request.urlopen(base + path, timeout=5) as response:
            assert response.status == 200, probe
    proc.send_signal(signal.SIGTERM)
    grace = one(objects, "Deployment")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
    assert proc.wait(grace) == 0


def test_a_pod_without_the_workload_identity_webhook_says_what_is_missing(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    env = {k: "" for k in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")}
    proc, _ = pod_process("sidecar", tmp_path, env, background)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "cannot start: deployments.gpt-4o-mini.backends[0]: workload-identity" in stderr
    assert "AZURE_FEDERATED_TOKEN_FILE" in stderr and "Traceback" not in stderr


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_database_from_secrets_and_the_migration_hook() -> None:
    objects = rendered("central")
    env = env_of(gateway_container(objects))
    assert env["MODEL_GATEWAY_DATABASE__URL"] == {
        "secretKeyRef": {"name": "model-gateway-postgres", "key": "url"}}
    assert env["MG_DATABASE_PASSWORD"] == {
        "secretKeyRef": {"name": "model-gateway-postgres", "key": "password"}}
    assert env["MODEL_GATEWAY_DATABASE__PASSWORD_ENV"] == "MG_DATABASE_PASSWORD"
    assert env["MODEL_GATEWAY_DATABASE__MIGRATE"] == "manual"  # the Job migrates
    job = one(objects, "Job", hook=True)
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"][:2] == ["db", "upgrade"]
    job_env = env_of(migrate)
    assert job_env["MODEL_GATEWAY_DATABASE__URL"] == env["MODEL_GATEWAY_DATABASE__URL"]
    assert "MODEL_GATEWAY_DATABASE__MIGRATE" not in job_env
    # It reads the same config, from a ConfigMap of its own made before it (a hook).
    hook_config, release_config = one(objects, "ConfigMap", hook=True), one(objects, "ConfigMap")
    assert hook_config["data"] == release_config["data"]
    assert int(hook_config["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        hooks["helm.sh/hook-weight"])
    # The Service never sends the Job traffic.
    selector = one(objects, "Service")["spec"]["selector"]
    assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()


def test_startup_migration_is_the_default() -> None:
    objects = rendered("central", database__migrate="startup")
    assert "Job" not in [o["kind"] for o in objects]
    assert "MODEL_GATEWAY_DATABASE__MIGRATE" not in env_of(gateway_container(objects))


def test_the_admin_port_on_the_service_and_in_the_network_policy() -> None:
    objects = rendered("central")
    service_ports = {p["name"]: p for p in one(objects, "Service")["spec"]["ports"]}
    assert service_ports["admin"]["port"] == 9090 and service_ports["admin"]["targetPort"] == "admin"
    container_ports = {p["name"]: p["containerPort"] for p in gateway_container(objects)["ports"]}
    assert container_ports == {"http": 8080, "admin": 9090}
    rules = one(objects, "NetworkPolicy")["spec"]["ingress"]
    admin_rule = next(r for r in rules if r["ports"][0]["port"] == "admin")
    assert admin_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform"}}}]
    config = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    assert config["admin"]["port"] == 9090
    assert config["ledger"]["spool_dir"] == "/var/lib/model-gateway/spool"


def test_the_data_volume_holds_the_default_database_and_the_spool() -> None:
    objects = rendered("default")
    gateway = gateway_container(objects)
    assert gateway["workingDir"] == "/var/lib/model-gateway"
    mounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
    assert mounts["/var/lib/model-gateway"] == "data"
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]


@pytest.mark.parametrize(("overrides", "names"), [
    # The admin API on several replicas, each with its own SQLite file.
    ({"database__existingSecret": ""}, "PostgreSQL database that all of them share"),
    ({"database__existingSecret": "", "config__admin": {}, "database__migrate": "hook"},
     "database.migrate: hook"),
])
def test_a_database_that_cannot_be_shared_fails_at_render(overrides: dict[str, Any],
                                                           names: str) -> None:
    values = copy.deepcopy(chart.example_values("central"))
    for dotted, value in overrides.items():
        *parents, last = dotted.split("__")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    assert names in render_error(values)


def test_the_chart_ships_the_dashboard_and_the_alerts_as_they_are() -> None:
    for source, shipped in chart.SHIPPED.items():
        assert shipped.read_bytes() == source.read_bytes(), (
            f"{shipped} drifted from {source}: run python -m tests.deploy.chart")
    objects = rendered("central")
    rule = one(objects, "PrometheusRule")
    alerts = yaml.safe_load((chart.ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts  # Prometheus' {{ $labels }} untouched by Helm
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    [board] = [o for o in objects if o["metadata"]["name"].endswith("-dashboard")]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads((chart.ROOT / "deploy" / "grafana" / "model-gateway.json").read_text())
    assert json.loads(board["data"]["model-gateway.json"]) == dashboard
    assert "PrometheusRule" not in [o["kind"] for o in rendered("default")]
