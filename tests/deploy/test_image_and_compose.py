"""The container image and the compose setup, checked with the real tools that run
here (no Docker engine on these machines): hadolint, and the gateway's own parser."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.cli import parser
from gateway.config import load

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_non_root_with_the_serve_entry_point() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]  # the runtime stage
    assert "USER 10001:10001" in final
    assert 'ENTRYPOINT ["model-gateway"]' in final and 'CMD ["serve"]' in final
    assert "gcc" not in final and "--no-cache-dir" in final
    assert "MODEL_GATEWAY_CONFIG=/etc/model-gateway/config.yaml" in final


def test_compose_runs_gateway_redis_and_simulator() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"gateway", "redis", "simulator"}
    # The simulator's command is one our CLI accepts.
    args = parser().parse_args(services["simulator"]["command"])
    assert args.verb == "simulate" and args.accept == ["local-upstream-key"]
    mount = services["gateway"]["volumes"][0].split(":")
    assert mount[1] == "/etc/model-gateway/config.yaml"
    config = load(DEPLOY / mount[0])
    assert config.redis.url == "redis://redis:6379/0"
    assert {b.url for d in config.deployments for b in d.backends} <= {
        "http://simulator:8090", "http://simulator:8090/v1"}
    assert services["gateway"]["environment"]["UPSTREAM_KEY"] == "local-upstream-key"
