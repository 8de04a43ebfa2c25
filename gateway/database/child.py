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

log = logging.getLogger("gateway")


async def prepare_database(config: GatewayConfig) -> None:
    """The schema migrated (or refused) once, before any worker starts."""
    from gateway.database.engine import make_engine
    from gateway.database.migrate import prepare

    engine = make_engine(config.database)
    try:
        await prepare(engine, migrate=config.database.migrate == "auto")
    finally:
        await engine.dispose()


async def _ready_here(config: GatewayConfig) -> str | None:
    """What makes the child unneeded, if anything (plain SQL, no Alembic): a schema
    already this gateway's, or an empty database, made here at head when migrations are
    allowed. None when neither holds or the database cannot be read, for the child to
    say why."""
    from gateway.database.engine import make_engine
    from gateway.database.errors import DatabaseUnavailable, unavailable
    from gateway.database.migrate import HEAD, create_if_empty, current

    errors: tuple[type[BaseException], ...] = (DatabaseUnavailable, *unavailable())
    try:
        engine = make_engine(config.database)
    except errors:  # a missing password, say: the child's error says which
        return None
    try:
        at = await current(engine)
        if at == HEAD:
            return f"database schema at {HEAD}, this gateway's: nothing to migrate"
        if at is None and config.database.migrate == "auto" and await create_if_empty(engine):
            return f"database empty: its schema made at {HEAD}"
        return None
    except errors as exc:
        # Not fatal: the child tries again and, if it fails too, says why and stops the start.
        log.warning("database not read here (%s): the migration process takes over",
                    exc if isinstance(exc, DatabaseUnavailable) else DatabaseUnavailable.of(exc))
        return None
    finally:
        await engine.dispose()


def migrate_apart(config: GatewayConfig) -> None:
    """prepare_database in a child process; by the time the gateway opens the database
    its schema is at head, and its start-up check reads that with plain SQL. A schema
    already at head (every start but the first) needs no child: one process less, and
    about a second of CPU; nor does an empty one (every first start), made at head here.
    With the database off there is nothing to prepare."""
    if not config.database.enabled:
        return
    ready = asyncio.run(_ready_here(config))
    if ready is not None:
        log.info("%s", ready)
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
