"""The bottom of the gateway: what every other room uses and that knows nothing of
them. Errors and how each client flavour renders them, the per-request Flow, the
operation vocabulary, SSE decoding, token counting, request ids and JSON replies, process
settings, Redis clients.

May import: policies only."""
