"""Process settings read from the environment (not part of the YAML config)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class ProcessSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODEL_GATEWAY_", extra="ignore")

    config: Path | None = None  # MODEL_GATEWAY_CONFIG: used when --config is not given
    log_level: str = "INFO"  # MODEL_GATEWAY_LOG_LEVEL
