"""Enforcement as the gateway runs it: which policies run, in which order (`build`),
the rate-limit store an app holds (`limiter`), the usage of a finished request and its
settlement (`accounting`), and the HTTP a policy may borrow (`services`). The policies
themselves are in the `policies` package, which never imports the gateway.

May import: core, config, ops, apis, upstream, policies."""
