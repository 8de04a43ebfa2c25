"""The admin API (/admin/v1): consumers and keys at runtime, the audit trail, usage,
and the live state of deployments and config. JSON in the contract's error shape,
its own credential (`admin.auth`). Mounted by `gateway.app` as a sub-application
(its routes are in `gateway.routes`); handlers read the gateway's state through
`request.config_dict`, the parent app's keys.

May import: core, config, database, upstream, runtime, team, http."""
