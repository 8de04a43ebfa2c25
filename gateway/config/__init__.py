"""The config: its models (`models`), reading a file (`loading`), and the checks of a
consumer that the config, the admin API and the CLI share (`consumers`).

May import: core, providers, policies."""

from gateway.config.loading import (
    ConfigError,
    StartupError,
    config_path,
    dump_public,
    load,
    load_config,
    parse,
)
from gateway.config.models import (
    AdminConfig,
    BackendConfig,
    BreakerConfig,
    DatabaseConfig,
    DeploymentConfig,
    GatewayConfig,
    LedgerConfig,
    RedisConfig,
    RoutingConfig,
    ServerConfig,
    Spillover,
    Timeouts,
)

__all__ = [
    "AdminConfig", "BackendConfig", "BreakerConfig", "ConfigError",
    "DatabaseConfig", "DeploymentConfig", "GatewayConfig", "LedgerConfig", "RedisConfig",
    "RoutingConfig", "ServerConfig", "Spillover", "StartupError", "Timeouts", "config_path",
    "dump_public", "load", "load_config", "parse",
]
