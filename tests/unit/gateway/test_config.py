from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.config import ConfigError, parse
from policies.auth import hash_key

BASE = """\
consumers:
  - {name: a, api_keys: ["DIGEST"], deployments: ["*"]}
deployments:
  - name: chat
    model: gpt-4o-mini
    backends:
      - {url: "https://east.example", api: azure-openai, deployment: d}
""".replace("DIGEST", hash_key("k"))


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse(text, "gw.yaml")
    return str(err.value)


def test_a_good_config_is_an_immutable_snapshot() -> None:
    config = parse(BASE)
    assert config.deployments[0].backends[0].auth.type == "none"
    assert config.server.port == 8080
    with pytest.raises(ValidationError):
        config.server.port = 1  # type: ignore[misc]


def test_unknown_keys_are_rejected_with_their_line() -> None:
    text = BASE.replace("    model: gpt-4o-mini\n", "    model: gpt-4o-mini\n    modle: x\n")
    assert "gw.yaml:6: deployments[0].modle: unknown key" in error_of(text)


def test_wrong_types_name_the_key() -> None:
    assert "gw.yaml:1: server.port: Input should be a valid integer" in error_of(
        "server: {port: eighty}\n" + BASE)


def test_keys_must_be_digests() -> None:
    text = BASE.replace(hash_key("k"), "plain-text-key")
    message = error_of(text)
    assert "consumers[0].api_keys" in message and "model-gateway hash-key" in message


def test_azure_openai_needs_a_deployment_and_api_key_needs_a_source() -> None:
    assert "needs `deployment`" in error_of(BASE.replace(", deployment: d", ""))
    text = BASE.replace("deployment: d}", "deployment: d, auth: {type: api-key}}")
    assert "key_env" in error_of(text)


def test_consumers_may_only_name_known_deployments() -> None:
    assert "unknown deployments: gpt-5" in error_of(BASE.replace('["*"]', '["gpt-5"]'))


def test_no_consumers_needs_anonymous_on_loopback() -> None:
    no_consumers = BASE.split("\ndeployments:")[1]
    assert "allow_anonymous" in error_of("deployments:" + no_consumers)
    sidecar = "auth: {allow_anonymous: true}\nserver: {host: 127.0.0.1}\n"
    sidecar += "deployments:" + no_consumers
    assert parse(sidecar).auth.allow_anonymous
    assert "loopback" in error_of("auth: {allow_anonymous: true}\ndeployments:" + no_consumers)


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_GATEWAY_SERVER__PORT", "9123")
    monkeypatch.setenv("MODEL_GATEWAY_REDIS__URL", "redis://cache:6379/0")
    config = parse("server: {port: 8080, host: 127.0.0.1}\n" + BASE)
    assert config.server.port == 9123 and config.server.host == "127.0.0.1"
    assert config.redis.url == "redis://cache:6379/0"


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML" in error_of("a: [")
    assert "top level must be a mapping" in error_of("- 1\n")


def test_duplicate_names() -> None:
    text = BASE + "  - {name: chat, model: m, backends: [{url: 'http://x', api: openai}]}\n"
    assert "repeated: chat" in error_of(text)


ADMIN = hash_key("admin-key")


@pytest.mark.parametrize(("change", "says"), [
    (("consumers:\n", "database: {url: 'postgresql://gw:secret@db/g'}\nconsumers:\n"),
     "database.url must not hold a password"),
    (("consumers:\n", "database: {url: 'postgresql://gw@db/g', password_env: P, "
                      "password_file: /p}\nconsumers:\n"),
     "name one of database.password_env and database.password_file"),
    (("consumers:\n", "admin: {api_keys: {ops: not-a-digest}}\nconsumers:\n"),
     "admin.api_keys.ops must be a digest"),
    (("consumers:\n", "quotas_timezone: Mars/Olympus\nconsumers:\n"),
     "quotas_timezone 'Mars/Olympus' is not a known time zone"),
    (("  - {name: a,", "  - {name: a, api_keys: [], deployments: ['*']}\n  - {name: a,"),
     "consumer names must be unique; repeated: a"),
    (("    model: gpt-4o-mini\n", "    model: gpt-4o-mini\n    content_filter: strict\n"),
     "content_filter"),
    (("consumers:\n", "server: {port: 9000}\nadmin: {port: 9000, api_keys: {ops: ADMIN}}\n"
                      "consumers:\n"), "admin.port must differ from server.port"),
    (("consumers:\n", "admin: {entra: {roles: [r]}}\nconsumers:\n"), "admin.entra needs auth.entra"),
    (('api_keys: ["', 'api_keys: ["ADMIN", "'),
     "holds an admin key: an admin credential is never a consumer's"),
    (("consumers:\n", "auth: {entra: {tenant_ids: [t], jwks_url: 'http://127.0.0.1/k'}}\n"
                      "consumers:\n"), "auth.entra is set but no consumer has an `entra` block"),
    (("consumers:\n", "auth: {allow_anonymous: true}\nconsumers:\n"),
     "auth.allow_anonymous is only allowed when server.host is a loopback address"),
])
def test_inconsistent_configs_say_what_to_change(change: tuple[str, str], says: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_GATEWAY_DATABASE__URL")  # the file's own database settings
    text = BASE.replace(*change, 1).replace("ADMIN", ADMIN)
    if "holds an admin key" in says:
        text = "admin: {api_keys: {ops: ADMIN}}\n".replace("ADMIN", ADMIN) + text
    assert says in error_of(text)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_anonymous_callers_on_a_loopback_listener(host: str) -> None:
    text = f"server: {{host: '{host}'}}\nauth: {{allow_anonymous: true}}\n" + BASE
    assert parse(text).auth.allow_anonymous


def test_a_key_in_two_consumers_is_refused() -> None:
    text = BASE.replace("  - {name: a,", "  - {name: b, api_keys: ['" + hash_key("k") +
                        "'], deployments: ['*']}\n  - {name: a,")
    said = error_of(text)
    assert "one API key digest is given to both 'b' and 'a'" in said and hash_key("k") not in said
