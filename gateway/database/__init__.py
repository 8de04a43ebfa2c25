"""What must last beyond a process: the database (SQLite by default, PostgreSQL for
a central gateway), its schema and migrations, and the queries each feature makes.
Nothing here runs on a model request's hot path; stored-response lookups run on the
Responses routes that need them.

The package itself imports nothing: a gateway with the database off
(`database.enabled: false`, the sidecar) loads no SQLAlchemy. `access` (the app key),
`errors` and `values` are what the rest of the gateway holds; the other modules are
imported only where a database is in use.

May import: core, config, policies."""
