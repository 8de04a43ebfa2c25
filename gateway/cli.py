"""`model-gateway` and its verbs: serve, demo, simulate, check, hash-key, db, consumers,
keys, usage."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import ConfigError, StartupError, config_path, load_config
from gateway.core.settings import ProcessSettings
from policies.ratelimit import LimitsConfig


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.database.errors import DatabaseUnavailable, SchemaError
    from gateway.server import serve

    config = load_config(args.config)
    if args.workers > 1 and config.server.port == 0:
        raise ConfigError("--workers needs a fixed server.port (not 0)")
    if args.workers > 1 and config.has_limits and not config.redis.url:
        raise ConfigError(
            f"--workers {args.workers} without redis.url would give each worker its own rate "
            "limits, multiplying them: set redis.url, or run one worker"
        )
    try:
        return serve(config, args.workers, config_path(args.config))
    except (StartupError, SchemaError, DatabaseUnavailable) as exc:
        print(f"model-gateway: cannot start: {exc}", file=sys.stderr)
        return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    demo.run(args.port)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.simulator import Fault, SimulatorSettings, create_simulator

    faults = []
    for spec in args.fault:
        kind, _, rate = spec.partition(":")
        faults.append(Fault(kind=kind, rate=float(rate) if rate else 1.0))
    settings = SimulatorSettings(
        accept=tuple(args.accept), ttft_ms=args.ttft_ms, token_ms=args.token_ms,
        completion_tokens=args.tokens, faults=faults,
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    web.run_app(create_simulator(settings), host=args.host, port=args.port, backlog=4096,
                handler_cancellation=True, access_log=None, print=lambda s: print(s, flush=True))
    return 0


def _limits(limits: LimitsConfig) -> str:
    parts = []
    if limits.requests_per_minute:
        parts.append(f"{limits.requests_per_minute} requests/min")
    if limits.tokens_per_minute:
        parts.append(f"{limits.tokens_per_minute} tokens/min")
    return ", ".join(parts) or "none"


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.core.redis_client import redacted
    from gateway.upstream.backends import SecretMissing, default_name, read_key
    from policies.service_auth import ApiKeyAuth

    config = load_config(args.config)
    print(f"config OK: {len(config.deployments)} deployments, {len(config.consumers)} consumers")
    print(f"server: {config.server.host}:{config.server.port}  redis: "
          f"{redacted(config.redis.url) if config.redis.url else 'none (in-process state)'}  "
          f"anonymous: {'allowed' if config.auth.allow_anonymous else 'no'}  "
          f"rate limits: {'yes' if config.has_limits else 'none'}")
    problems = 0
    for d in config.deployments:
        print(f"deployment {d.name}: model {d.model}" + (f" ({d.version})" if d.version else "")
              + (f"  limits {_limits(d.limits)}" if d.limits else ""))
        for i, b in enumerate(d.backends):
            auth: str = b.auth.type
            if isinstance(b.auth, ApiKeyAuth):
                auth += f" from {'$' + b.auth.key_env if b.auth.key_env else b.auth.key_file}"
                try:
                    read_key(b.auth, f"deployments.{d.name}.backends[{i}]")
                except SecretMissing as exc:
                    print(f"  ! {exc}")
                    problems += 1
            print(f"  backend {b.name or default_name(b)}: {b.provider} {b.url} "
                  f"priority {b.priority} weight {b.weight} auth {auth}")
    for c in config.consumers:
        print(f"consumer {c.name}: {len(c.api_keys)} key(s), deployments {', '.join(c.deployments)}"
              + (f"  limits {_limits(c.limits)}" if c.limits else ""))
        for name, limits in c.limits_by_deployment.items():
            print(f"  on {name}: limits {_limits(limits)}")
    return 1 if problems else 0


def cmd_db(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.database.engine import make_engine
    from gateway.database.errors import DatabaseUnavailable, SchemaError, unavailable
    from gateway.database.migrate import current, head, upgrade

    config = load_config(args.config).database
    if not config.enabled:
        print("model-gateway: this config has no database (database.enabled is false)",
              file=sys.stderr)
        return 2

    async def run() -> str:
        engine = make_engine(config)
        try:
            if args.action == "current":
                return f"at {await current(engine) or 'none'} (this gateway knows up to {head()})"
            return f"upgraded to {await upgrade(engine)}"
        except unavailable() as exc:
            raise DatabaseUnavailable.of(exc) from None
        finally:
            await engine.dispose()

    try:
        # The URL holds no password: the config refuses one there.
        print(f"database {config.url}: {asyncio.run(run())}")
    except (SchemaError, DatabaseUnavailable) as exc:
        print(f"model-gateway: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_hash_key(args: argparse.Namespace) -> int:
    from policies.auth import hash_key

    key = args.key
    if key is None:
        key = getpass.getpass("key: ") if sys.stdin.isatty() else sys.stdin.readline()
    key = key.strip()
    if not key:
        print("model-gateway hash-key: empty key", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="model-gateway", description=__doc__)
    verbs = p.add_subparsers(dest="verb", required=True)

    s = verbs.add_parser("serve", help="run the gateway")
    s.add_argument("--config", type=Path, help="YAML config (default: $MODEL_GATEWAY_CONFIG)")
    s.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    s.set_defaults(func=cmd_serve)

    d = verbs.add_parser("demo", help="gateway + simulator in one process, ready to call")
    d.add_argument("--port", type=int, default=8080)
    d.set_defaults(func=cmd_demo)

    m = verbs.add_parser("simulate", help="run only the upstream simulator")
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=8090)
    m.add_argument("--ttft-ms", type=float, default=0.0)
    m.add_argument("--token-ms", type=float, default=0.0)
    m.add_argument("--tokens", type=int, default=16, help="completion tokens per reply")
    m.add_argument("--accept", action="append", default=[], help="a credential to accept")
    m.add_argument("--fault", action="append", default=[],
                   help="KIND[:RATE], KIND one of 429 500 503 hang reset stall")
    m.set_defaults(func=cmd_simulate)

    c = verbs.add_parser("check", help="validate a config and print what it defines")
    c.add_argument("--config", type=Path)
    c.set_defaults(func=cmd_check)

    b = verbs.add_parser("db", help="the database: migrate it, or say where it is")
    b.add_argument("action", choices=("upgrade", "current"))
    b.add_argument("--config", type=Path)
    b.set_defaults(func=cmd_db)

    from gateway.team.verbs import add_verbs

    add_verbs(verbs)

    h = verbs.add_parser("hash-key", help="print the digest a config stores for a key")
    h.add_argument("key", nargs="?", help="the key (read from stdin when omitted)")
    h.set_defaults(func=cmd_hash_key)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=ProcessSettings().log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"model-gateway: {exc}", file=sys.stderr)
        return 2
