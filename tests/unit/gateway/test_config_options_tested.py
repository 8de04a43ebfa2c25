"""Every config option docs/contract.md §3 lists is set by at least one test: the
table's keys are read from the document, and each must appear, as a key of a config a
test writes (JSON/dict, YAML, keyword or MODEL_GATEWAY_ override), in some test file
other than this one, under its parent key."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TESTS = ROOT / "tests"


def table_keys(contract: str) -> list[str]:
    """The option paths of §3's table: `server.host`, `.port` -> server.host, server.port;
    `x.breaker` (`failures`, `open_seconds`) -> x.breaker, x.breaker.failures, ..."""
    section = contract.split("## 3. Configuration", 1)[1].split("\n## ", 1)[0]
    keys: list[str] = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        base = last = ""
        depth = 0
        for token in re.findall(r"`[^`]+`|[()]", row.split("|")[1]):
            if token in "()":
                depth += 1 if token == "(" else -1
                continue
            name = token.strip("`")
            if depth:  # a field of the key before the parentheses
                keys.append(f"{last}.{name}")
                continue
            if name.startswith("."):
                last = base + name
            else:
                last, base = name, name.rsplit(".", 1)[0] if "." in name else name
            keys.append(last)
    return keys


def _set(name: str) -> str:
    return (rf"""(["']{re.escape(name)}["']\s*[:\]]|\b{re.escape(name)}\s*[:=]\s*\S"""
            rf"""|__{re.escape(name.upper())}\b|_{re.escape(name.upper())}__)""")


def untested(keys: list[str], sources: dict[str, str]) -> list[str]:
    missing = []
    for key in keys:
        parts = [p.removesuffix("[]") for p in key.split(".") if p != "{profile}"]
        leaf, parent = parts[-1], (parts[-2] if len(parts) > 1 else None)
        found = any(re.search(_set(leaf), text) and (parent is None or re.search(_set(parent), text))
                    for text in sources.values())
        if not found:
            missing.append(key)
    return missing


def test_the_table_is_read_whole() -> None:
    keys = table_keys((ROOT / "docs" / "contract.md").read_text())
    assert {"server.host", "server.port", "database.password_file", "quotas_timezone",
            "deployments[].backends[].timeouts.idle", "deployments[].routing.breaker.min_requests",
            "content_filters.{profile}", "consumers[].max_inflight", "ledger.spool_dir",
            "auth.entra.jwks_refresh_seconds", "admin.entra.roles"} <= set(keys), keys
    assert len(keys) == len(set(keys)) and len(keys) > 80


def test_every_option_in_the_contract_is_set_by_a_test() -> None:
    keys = table_keys((ROOT / "docs" / "contract.md").read_text())
    sources = {str(p): p.read_text() for p in TESTS.rglob("*.py") if p != Path(__file__).resolve()}
    assert untested(keys, sources) == []


def test_a_key_no_test_sets_is_found() -> None:
    sources = {"t.py": 'config["server"] = {"port": 1}\nMODEL_GATEWAY_REDIS__URL=x'}
    assert untested(["server.port", "server.host", "redis.url", "redis.cluster"], sources) == [
        "server.host", "redis.cluster"]
