"""Model Gateway: one endpoint and one credential for an organisation's LLM deployments.
The rooms and the path of a request through them are drawn in docs/architecture.md."""
