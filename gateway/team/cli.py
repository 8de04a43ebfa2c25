"""`model-gateway consumers|keys|usage` (their arguments: `team.verbs`): team access
from the command line, on the same database as the admin API (for operators who do not
expose it). Changes are audited under `cli:<user>`; running gateways pick them up
within admin.refresh_seconds."""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from gateway.config import GatewayConfig, load_config
from gateway.config.consumers import ConsumerProblem, NewConsumer, check_consumer
from gateway.database.engine import make_engine
from gateway.database.errors import DatabaseUnavailable, SchemaError, unavailable
from gateway.database.migrate import prepare
from gateway.database.team import Conflict, NotFound, Team
from gateway.database.usage import UsageLedger, group
from gateway.database.values import COUNTS

Action = Callable[[GatewayConfig, Team, UsageLedger, argparse.Namespace], Awaitable[int]]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def run(action: Action) -> Callable[[argparse.Namespace], int]:
    def verb(args: argparse.Namespace) -> int:
        config = load_config(args.config)
        if not config.database.enabled:
            print("model-gateway: this config has no database (database.enabled is false)",
                  file=sys.stderr)
            return 2

        async def go() -> int:
            engine = make_engine(config.database)
            try:
                await prepare(engine, migrate=config.database.migrate == "auto")
                return await action(config, Team(engine), UsageLedger(engine), args)
            finally:
                await engine.dispose()

        try:
            return asyncio.run(go())
        except (NotFound, Conflict) as exc:
            print(f"model-gateway: {type(exc).__name__.lower()}: {exc}", file=sys.stderr)
            return 1
        except (SchemaError, DatabaseUnavailable) as exc:
            print(f"model-gateway: {exc}", file=sys.stderr)
            return 2
        except unavailable() as exc:
            print(f"model-gateway: {DatabaseUnavailable.of(exc)}", file=sys.stderr)
            return 2
    return verb


async def consumers_list(config: GatewayConfig, team: Team, _: UsageLedger,
                         args: argparse.Namespace) -> int:
    for c in config.consumers:
        print(f"{c.name}  (config)  deployments {', '.join(c.deployments)}")
    for stored in (await team.snapshot()).consumers:
        print(f"{stored.name}  (database)  deployments {', '.join(stored.spec.get('deployments', []))}")
    return 0


async def consumers_create(config: GatewayConfig, team: Team, _: UsageLedger,
                           args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    if args.name in {c.name for c in config.consumers}:
        raise Conflict(f"{args.name} is defined in the config file")
    try:
        new = NewConsumer.model_validate({**(args.spec or {}), "name": args.name,
                                          "deployments": args.deployments})
    except ValidationError as exc:
        err = exc.errors()[0]
        print(f"model-gateway: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    try:
        check_consumer(new.deployments, new.limits_by_deployment, new.quotas_by_deployment,
                       new.entra is not None, {d.name for d in config.deployments},
                       config.auth.entra is not None)
    except ConsumerProblem as exc:
        print(f"model-gateway: {args.name} {exc.message}", file=sys.stderr)
        return 2
    spec = new.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
    await team.create_consumer(args.name, spec, _actor())
    print(f"consumer {args.name} created")
    return 0


async def consumers_delete(config: GatewayConfig, team: Team, _: UsageLedger,
                           args: argparse.Namespace) -> int:
    await team.delete_consumer(args.name, _actor())
    print(f"consumer {args.name} deleted")
    return 0


async def keys_create(config: GatewayConfig, team: Team, _: UsageLedger,
                      args: argparse.Namespace) -> int:
    expires = datetime.datetime.fromisoformat(args.expires) if args.expires else None
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.UTC)
    stored, key = await team.create_key(args.consumer, args.description, expires, _actor())
    print(f"key {stored.id} for {args.consumer} (shown once, store it now):")
    print(key)
    return 0


async def keys_list(config: GatewayConfig, team: Team, _: UsageLedger,
                    args: argparse.Namespace) -> int:
    for k in await team.keys(args.consumer):
        state = "revoked" if k.revoked_at else ("expires " + k.expires_at.isoformat()
                                                if k.expires_at else "active")
        print(f"{k.id}  {k.prefix}...  {state}  {k.description or ''}".rstrip())
    return 0


async def keys_revoke(config: GatewayConfig, team: Team, _: UsageLedger,
                      args: argparse.Namespace) -> int:
    await team.revoke_key(args.consumer, args.key_id, _actor())
    print(f"key {args.key_id} revoked")
    return 0


async def usage(config: GatewayConfig, _: Team, ledger: UsageLedger, args: argparse.Namespace) -> int:
    def when(value: str) -> datetime.datetime:
        moment = datetime.datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)

    rows = await ledger.rows(when(args.start), when(args.end), args.consumer, args.deployment)
    grouped = group(rows, args.group_by, ZoneInfo(config.quotas_timezone))
    columns = ["consumer", "deployment", "period", *COUNTS]
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for row in grouped:
            writer.writerow([row[c] for c in columns])
    else:
        print(json.dumps(grouped, indent=1))
    return 0
