"""Process settings read from the environment (not part of the YAML config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.environment import setting


def _config() -> Path | None:
    path = setting("config")
    return Path(path) if path else None


def _log_level() -> str:
    return setting("log_level") or "INFO"


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    config: Path | None = field(default_factory=_config)  # MODEL_GATEWAY_CONFIG, when no --config
    log_level: str = field(default_factory=_log_level)  # MODEL_GATEWAY_LOG_LEVEL
