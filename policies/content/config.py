"""The content_filters config: a profile is an ordered list of filters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.content.normalize import compile_pattern
from policies.content.pii import KINDS
from policies.service_auth import ServiceAuth

Stage = Literal["prompt", "completion"]
Action = Literal["block", "redact", "annotate"]
Level = Literal["low", "medium", "high"]


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    stages: tuple[Stage, ...] = ("prompt", "completion")
    # An error or timeout in this filter: reject (closed) or let the text pass (open).
    on_error: Literal["open", "closed"] = "closed"


class BlocklistConfig(_Filter):
    type: Literal["blocklist"]
    name: str = "custom_blocklist"
    # Whole words or phrases: any case, any run of whitespace between words, any
    # Unicode compatibility form (fullwidth, ligatures), invisible characters ignored.
    terms: tuple[str, ...] = ()
    # Regular expressions in RE2 syntax (linear time; no backreferences or lookaround),
    # matched case-insensitively against the same normalized text.
    patterns: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()  # one term per line; '#' starts a comment
    action: Action = "block"

    @field_validator("patterns")
    @classmethod
    def _re2(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            compile_pattern(pattern)  # raises ValueError naming the pattern
        return patterns


class PiiConfig(_Filter):
    type: Literal["pii"]
    kinds: tuple[Literal["email", "phone", "card", "iban", "ssn", "ip"], ...] = KINDS  # type: ignore[assignment]
    action: Action = "redact"


class HookConfig(_Filter):
    type: Literal["hook"]
    callable: str = Field(pattern=r"^[\w.]+:[\w.]+$")  # package.module:function
    action: Action = "block"
    timeout_seconds: float = Field(2.0, gt=0)


class ContentSafetyConfig(_Filter):
    """Azure AI Content Safety: harm categories, and Prompt Shields on prompts."""

    type: Literal["azure-content-safety"]
    endpoint: str = Field(pattern=r"^https?://[^/\s]+/?$")
    auth: ServiceAuth
    thresholds: dict[Literal["hate", "sexual", "self_harm", "violence"], Level] = {
        "hate": "medium", "sexual": "medium", "self_harm": "medium", "violence": "medium"}
    shield_prompt: bool = False
    action: Literal["block", "annotate"] = "block"
    timeout_seconds: float = Field(2.0, gt=0)
    cache_seconds: float = Field(30.0, ge=0)
    api_version: str = "2024-09-01"


FilterConfig = Annotated[
    BlocklistConfig | PiiConfig | HookConfig | ContentSafetyConfig, Field(discriminator="type")
]
Profile = tuple[FilterConfig, ...]
