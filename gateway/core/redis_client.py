"""Redis clients from `redis.url`: one node (`redis://`, `rediss://`), a master found
through Redis Sentinel (`redis+sentinel://`), or a Redis Cluster (`redis.cluster`).

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]
        [?sentinel_password=...]

The password is the data nodes'; sentinels that require their own take
`sentinel_password`. After a failover the Sentinel client asks the sentinels for
the new master on its next connection, so limits and cooldowns carry on there.
redis-py is imported only when Redis is configured: it costs memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def _host_port(part: str) -> tuple[str, int]:
    if part.startswith("["):  # [ipv6]:port
        host, _, rest = part[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
    if not host:
        raise ValueError(f"sentinel address {part!r} has no host")
    if not port:
        return host, DEFAULT_SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel address {part!r} has no valid port")
    return host, int(port)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Raises ValueError naming what is wrong (never echoing the password)."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    if not hosts:
        raise ValueError("a redis+sentinel URL names at least one sentinel host:port")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("a redis+sentinel URL ends in /<master name>[/<db>]")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError("the database in a redis+sentinel URL is a number")
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown redis+sentinel URL options: {', '.join(sorted(unknown))}")
    return SentinelUrl(
        sentinels=tuple(_host_port(h) for h in hosts.split(",")),
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=query["sentinel_password"][0] if "sentinel_password" in query else None,
    )


def redacted(url: str) -> str:
    """The URL with its passwords replaced, for output an operator may share."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at:
        username, colon, _ = userinfo.partition(":")
        userinfo = f"{username}:***" if colon else userinfo
    query = "&".join(
        f"{k}=***" if k == "sentinel_password" else f"{k}={v}"
        for k, values in parse_qs(parts.query).items() for v in values
    )
    netloc = f"{userinfo}@{hosts}" if at else hosts
    return parts._replace(netloc=netloc, query=query).geturl()


def connect(url: str, *, cluster: bool = False, timeout_s: float | None = 0.5) -> Any:
    """A client for `url`. `timeout_s` bounds every call; None for a pub/sub listener,
    which waits for messages (connecting is bounded either way)."""
    import redis.asyncio as aioredis

    bound = timeout_s or 0.5
    options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": bound}
    if urlsplit(url).scheme == SENTINEL_SCHEME:
        from redis.asyncio.sentinel import Sentinel

        parsed = parse_sentinel_url(url)
        asking: dict[str, Any] = {"socket_timeout": bound, "socket_connect_timeout": bound}
        if parsed.sentinel_password:
            asking["password"] = parsed.sentinel_password
        # Through Any: redis-py before 8.2 leaves Sentinel untyped, 8.2 types it, and one
        # source must pass mypy --strict with either.
        make_sentinel: Any = Sentinel
        sentinel = make_sentinel(list(parsed.sentinels), sentinel_kwargs=asking)
        return sentinel.master_for(parsed.master, db=parsed.db, username=parsed.username,
                                   password=parsed.password, health_check_interval=30, **options)
    if cluster:
        return aioredis.RedisCluster.from_url(url, **options)
    return aioredis.Redis.from_url(url, health_check_interval=30, **options)
