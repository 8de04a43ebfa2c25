"""How the gateway authenticates to a service it calls (an upstream backend, the
Content Safety service): the config models only. The gateway turns them into
headers; secrets are named here, never written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_SCOPE = "https://cognitiveservices.azure.com/.default"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKeyAuth(_Strict):
    type: Literal["api-key"]
    key_env: str | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyAuth:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("name exactly one of key_env (an environment variable) or key_file")
        return self


class EntraAuth(_Strict):
    type: Literal["entra"]
    credential: Literal["default", "managed-identity", "workload-identity"] = "default"
    client_id: str | None = None
    tenant_id: str | None = None
    scope: str = DEFAULT_SCOPE


class NoAuth(_Strict):
    type: Literal["none"]


ServiceAuth = Annotated[ApiKeyAuth | EntraAuth | NoAuth, Field(discriminator="type")]
