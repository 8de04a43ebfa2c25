"""The environment's overrides of the config (contract §3): nesting by `__`, any case,
JSON for lists and mappings, only the config's own top-level keys, laid over the file."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, GatewayConfig, parse
from gateway.core.environment import merged, overrides, setting
from gateway.core.settings import ProcessSettings
from policies.auth import hash_key

KEYS = ("server", "redis", "deployments", "quotas_timezone")
MAPPINGS = ("server", "redis", "deployments")


def test_nesting_case_and_json() -> None:
    env = {"MODEL_GATEWAY_SERVER__PORT": "9000", "model_gateway_server__host": "::1",
           "MODEL_GATEWAY_SERVER__FORWARD_REQUEST_HEADERS": '["x-a", "x-b"]',
           "MODEL_GATEWAY_REDIS": '{"url": "redis://r:6379/0"}',
           "MODEL_GATEWAY_REDIS__CLUSTER": "true",
           "MODEL_GATEWAY_CONFIG": "/etc/gw.yaml", "MODEL_GATEWAY_KEY": "a client's key",
           "OTHER__PORT": "1", "MODEL_GATEWAY_SERVER__": "empty last part",
           # Below a scalar key a name means nothing: left alone, as pydantic-settings did.
           "MODEL_GATEWAY_QUOTAS_TIMEZONE__X": "1"}
    assert overrides(KEYS, MAPPINGS, env) == {
        "server": {"port": "9000", "host": "::1", "forward_request_headers": ["x-a", "x-b"]},
        "redis": {"url": "redis://r:6379/0", "cluster": "true"}}
    # Text that only looks like JSON stays text, for the model to judge under its key.
    assert overrides(KEYS, MAPPINGS, {"MODEL_GATEWAY_SERVER__HOST": "{not json"}) == {
        "server": {"host": "{not json"}}
    # JSON after blanks; null clears an optional block; a mapping's JSON comes before its
    # keys whatever the case of either name.
    assert overrides(KEYS, MAPPINGS, {"MODEL_GATEWAY_SERVER__FORWARD_REQUEST_HEADERS": ' ["x"]',
                                      "MODEL_GATEWAY_REDIS": "null"}) == {
        "server": {"forward_request_headers": ["x"]}, "redis": None}
    assert overrides(KEYS, MAPPINGS, {"MODEL_GATEWAY_SERVER__PORT": "9002",
                                      "model_gateway_server": '{"host": "::1"}'}) == {
        "server": {"host": "::1", "port": "9002"}}


def test_laid_over_the_file_mapping_into_mapping() -> None:
    base = {"server": {"port": 8080, "host": "127.0.0.1"}, "deployments": [1]}
    assert merged(base, {"server": {"port": "9"}, "deployments": [2]}) == {
        "server": {"port": "9", "host": "127.0.0.1"}, "deployments": [2]}
    assert base["server"] == {"port": 8080, "host": "127.0.0.1"}  # the file's dict is kept


def test_the_config_takes_them_however_it_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_GATEWAY_SERVER__PORT", "9123")
    monkeypatch.setenv("MODEL_GATEWAY_DATABASE__ENABLED", "false")
    monkeypatch.setenv("MODEL_GATEWAY_LEDGER__ENABLED", "false")
    text = ("server: {port: 8080}\nconsumers: [{name: a, api_keys: ['" + hash_key("k") +
            "'], deployments: ['*']}]\ndeployments: [{name: c, model: c, backends: "
            "[{url: 'https://e.example', api: openai}]}]\n")
    config = parse(text)
    assert config.server.port == 9123 and config.database.enabled is False
    # The migration child gets the config as JSON: the environment applies there too.
    monkeypatch.setenv("MODEL_GATEWAY_SERVER__PORT", "9124")
    assert GatewayConfig.model_validate_json(config.model_dump_json()).server.port == 9124
    monkeypatch.setenv("MODEL_GATEWAY_QUOTAS_TIMEZONE__X", "1")  # ignored, as before
    assert parse(text).quotas_timezone == "UTC"
    monkeypatch.setenv("MODEL_GATEWAY_SERVER__BOGUS", "1")
    with pytest.raises(ConfigError, match=r"server\.bogus: unknown key"):
        parse(text, "gw.yaml")


def test_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_GATEWAY_CONFIG", raising=False)
    monkeypatch.delenv("MODEL_GATEWAY_LOG_LEVEL", raising=False)
    assert ProcessSettings().config is None and ProcessSettings().log_level == "INFO"
    monkeypatch.setenv("model_gateway_log_level", "debug")
    monkeypatch.setenv("MODEL_GATEWAY_CONFIG", "/etc/gw.yaml")
    assert ProcessSettings().log_level == "debug" and str(ProcessSettings().config) == "/etc/gw.yaml"
    assert setting("nothing_by_this_name") is None
