"""Everything about calling upstreams: backends built from their provider and config
(`backends`), their health and shared cooldowns, credentials (Entra tokens), the pooled
client and which headers cross (`client`), the order to try a deployment's backends
(`routing`), and the one function that makes every upstream call (`exchange`).

May import: core, providers, config, ops, policies."""
