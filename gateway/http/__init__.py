"""The HTTP plane: connections and their limits (`connections`), the request-wide
middleware, admission caps, reading a request (`inbound`), the model handler (`proxy`),
stored responses, the relay of answers to the client, the catalog, health and OpenAPI.

May import: core, config, ops, apis, translate, database, upstream, enforcement, runtime,
team;
never the admin API, the assembly or the CLI."""
