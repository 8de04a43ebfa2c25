"""The process that prepares the database before the gateway opens it: migrations (or
the refusal to start on a schema that is not at head) run here, apart, so that Alembic
and what it brings (Mako, Pygments) never enter the gateway's own memory.

It imports only the config and the database package, not the gateway's app: a gateway's
start-up pays for this process, and importing the whole app was most of its cost. It
reads the config as JSON (names of secrets, never secrets) on its stdin, logs to the
stderr it shares with the gateway, and prints the reason it failed as its last line."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

from gateway.config import GatewayConfig, StartupError
from gateway.core.settings import ProcessSettings
from gateway.database.migrate import HEAD

log = logging.getLogger("gateway")


async def prepare_database(config: GatewayConfig) -> None:
    """The schema migrated (or refused) once, before any worker starts."""
    from gateway.database import make_engine
    from gateway.database.migrate import prepare

    engine = make_engine(config.database)
    try:
        await prepare(engine, migrate=config.database.migrate == "auto")
    finally:
        await engine.dispose()


async def _at_head(config: GatewayConfig) -> bool:
    """Whether the schema is already this gateway's (plain SQL, no Alembic); False when
    that cannot be read, for the child to say why."""
    from gateway.database import make_engine
    from gateway.database.engine import DatabaseUnavailable, unavailable
    from gateway.database.migrate import current

    errors: tuple[type[BaseException], ...] = (DatabaseUnavailable, *unavailable())
    try:
        engine = make_engine(config.database)
    except errors:  # a missing password, say: the child's error says which
        return False
    try:
        return await current(engine) == HEAD
    except errors:
        return False
    finally:
        await engine.dispose()


def migrate_apart(config: GatewayConfig) -> None:
    """prepare_database in a child process; by the time the gateway opens the database
    its schema is at head, and its start-up check reads that with plain SQL. A schema
    already at head (every start but the first) needs no child: one process less, and
    about a second of CPU."""
    if asyncio.run(_at_head(config)):
        log.info("database schema at %s, this gateway's: nothing to migrate", HEAD)
        return
    child = subprocess.run(
        [sys.executable, "-c", "from gateway.database.child import main; main()"],
        input=config.model_dump_json(), stdout=subprocess.PIPE, text=True, check=False)
    if child.returncode != 0:
        why = child.stdout.strip().splitlines()[-1] if child.stdout.strip() else f"exit {child.returncode}"
        raise StartupError(f"the database cannot be prepared: {why}")


def main() -> None:
    """The child: it logs as the gateway does."""
    logging.basicConfig(level=ProcessSettings().log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = GatewayConfig.model_validate_json(sys.stdin.read())
    try:
        asyncio.run(prepare_database(config))
    except Exception as exc:
        # One line: SQLAlchemy's messages end in a line that only points to its docs.
        lines = [line.strip() for line in str(exc).splitlines()
                 if line.strip() and not line.startswith("(Background on this error")]
        print(f"{type(exc).__name__}: {'; '.join(lines)}")
        sys.exit(2)
