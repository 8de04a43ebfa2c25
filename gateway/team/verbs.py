"""The arguments of `model-gateway consumers|keys|usage`. What they do (`team.cli`,
SQLAlchemy's queries) is imported only when one of them runs: `model-gateway serve`
builds this parser too, and a gateway without a database must not load it."""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _later(name: str) -> Callable[[argparse.Namespace], int]:
    def verb(args: argparse.Namespace) -> int:
        cli = importlib.import_module("gateway.team.cli")
        done: int = cli.run(getattr(cli, name))(args)
        return done

    return verb


def add_verbs(verbs: Any) -> None:
    """The verbs and their arguments on `verbs` (argparse's subparsers)."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path)

    c = verbs.add_parser("consumers", help="consumers kept in the database")
    cv = c.add_subparsers(dest="action", required=True)
    p = cv.add_parser("list")
    common(p)
    p.set_defaults(func=_later("consumers_list"))
    p = cv.add_parser("create")
    common(p)
    p.add_argument("name")
    p.add_argument("--deployments", nargs="+", required=True)
    p.add_argument("--spec", type=lambda path: json.loads(Path(path).read_text()),
                   help="a JSON file with limits, quotas, entra, metadata ...")
    p.set_defaults(func=_later("consumers_create"))
    p = cv.add_parser("delete")
    common(p)
    p.add_argument("name")
    p.set_defaults(func=_later("consumers_delete"))

    k = verbs.add_parser("keys", help="keys of consumers kept in the database")
    kv = k.add_subparsers(dest="action", required=True)
    p = kv.add_parser("create")
    common(p)
    p.add_argument("consumer")
    p.add_argument("--description")
    p.add_argument("--expires", help="ISO 8601 time (UTC unless it says otherwise)")
    p.set_defaults(func=_later("keys_create"))
    p = kv.add_parser("list")
    common(p)
    p.add_argument("consumer")
    p.set_defaults(func=_later("keys_list"))
    p = kv.add_parser("revoke")
    common(p)
    p.add_argument("consumer")
    p.add_argument("key_id")
    p.set_defaults(func=_later("keys_revoke"))

    u = verbs.add_parser("usage", help="the usage ledger")
    common(u)
    u.add_argument("--from", dest="start", required=True)
    u.add_argument("--to", dest="end", required=True)
    u.add_argument("--group-by", choices=("hour", "day", "month"), default="day")
    u.add_argument("--consumer")
    u.add_argument("--deployment")
    u.add_argument("--csv", action="store_true")
    u.set_defaults(func=_later("usage"))
