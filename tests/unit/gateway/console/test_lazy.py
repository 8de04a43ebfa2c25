"""An idle gateway pays next to nothing for the console: building the app (console
mounted) imports neither Jinja2 nor the page modules and their form models; the first
/ui request does (tests/benchmarks/console_rss.py measures the memory)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from gateway.app import create_app
from gateway.config import GatewayConfig
from policies.auth import hash_key
create_app(GatewayConfig(admin={"api_keys": {"ops": hash_key("k")}}, deployments=[
    {"name": "chat", "model": "m", "backends": [{"url": "http://127.0.0.1:9/v1", "api": "openai"}]}]))
loaded = sorted(m for m in sys.modules if m == "jinja2" or m.startswith(("jinja2.", "gateway.console.")))
print(",".join(loaded))
"""


def test_building_the_app_loads_no_template_engine_and_no_page() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split(",") == ["gateway.console.guard", "gateway.console.sessions",
                                              "gateway.console.state"]
