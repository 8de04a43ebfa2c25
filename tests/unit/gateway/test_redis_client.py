from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse
from gateway.core.redis_client import SentinelUrl, parse_sentinel_url, redacted
from tests.unit.gateway.test_config import BASE


def test_sentinel_url_names_sentinels_master_db_and_passwords() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://:s3cret@sentinel-0:26380,sentinel-1,[::1]:26381/mymaster/2"
        "?sentinel_password=other")
    assert parsed == SentinelUrl(
        sentinels=(("sentinel-0", 26380), ("sentinel-1", 26379), ("::1", 26381)),
        master="mymaster", db=2, username=None, password="s3cret", sentinel_password="other")
    assert parse_sentinel_url("redis+sentinel://app:pw@s:1/m").username == "app"
    assert parse_sentinel_url("redis+sentinel://s/m").db == 0


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel:///mymaster", "at least one sentinel"),
    ("redis+sentinel://s:26379", "/<master name>"),
    ("redis+sentinel://s:26379/m/zero", "is a number"),
    ("redis+sentinel://s:port/m", "no valid port"),
    ("redis+sentinel://s/m?tls=1", "unknown redis+sentinel URL options: tls"),
])
def test_bad_sentinel_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("+", r"\+").replace("[", r"\[")):
        parse_sentinel_url(url)


def test_redacted_hides_every_password() -> None:
    assert redacted("redis://:pw@cache:6380/0") == "redis://:***@cache:6380/0"
    assert redacted("rediss://user:pw@cache:6380/0") == "rediss://user:***@cache:6380/0"
    assert redacted("redis://cache:6379/0") == "redis://cache:6379/0"
    assert redacted("redis+sentinel://:pw@a:1,b:2/m/0?sentinel_password=x") == (
        "redis+sentinel://:***@a:1,b:2/m/0?sentinel_password=***")


def config_error(redis: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse(BASE + redis, "gw.yaml")
    return str(err.value)


def test_config_checks_redis_urls() -> None:
    assert "redis.url must start with one of redis://" in config_error(
        "redis: {url: 'http://cache:6379'}\n")
    assert "exclude each other" in config_error(
        "redis: {url: 'redis+sentinel://s/m', cluster: true}\n")
    message = config_error("redis: {url: 'redis+sentinel://:topsecret@s/m/x'}\n")
    assert "is a number" in message and "topsecret" not in message
    assert parse(BASE + "redis: {url: 'redis+sentinel://s:26379/m'}\n").redis.url
