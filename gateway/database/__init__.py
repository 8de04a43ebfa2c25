"""What must last beyond a process: the database (SQLite by default, PostgreSQL for
a central gateway), its schema and migrations, and the queries each feature makes.
Nothing here runs on a model request's hot path; stored-response lookups run on the
Responses routes that need them.

May import: core, config, policies."""

from gateway.database.engine import Database, database_ctx, make_engine
from gateway.database.migrate import SchemaError, upgrade

__all__ = ["Database", "SchemaError", "database_ctx", "make_engine", "upgrade"]
