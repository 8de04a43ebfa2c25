"""What operators read: Prometheus metrics (`metrics`), OpenTelemetry traces and
metrics (`telemetry`), the access log (`accesslog`). Each is made of a request's Flow
and names, numbers and codes only.

May import: core, providers, config."""
