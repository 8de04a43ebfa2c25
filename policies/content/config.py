"""The content_filters config: a profile is an ordered list of filters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.content.pii import KINDS

Stage = Literal["prompt", "completion"]
Action = Literal["block", "redact", "annotate"]


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    stages: tuple[Stage, ...] = ("prompt", "completion")
    # An error or timeout in this filter: reject (closed) or let the text pass (open).
    on_error: Literal["open", "closed"] = "closed"


class BlocklistConfig(_Filter):
    type: Literal["blocklist"]
    name: str = "custom_blocklist"
    terms: tuple[str, ...] = ()  # whole words or phrases, any case
    patterns: tuple[str, ...] = ()  # regular expressions
    files: tuple[Path, ...] = ()  # one term per line; '#' starts a comment
    action: Action = "block"


class PiiConfig(_Filter):
    type: Literal["pii"]
    kinds: tuple[Literal["email", "phone", "card", "iban", "ssn", "ip"], ...] = KINDS  # type: ignore[assignment]
    action: Action = "redact"


class HookConfig(_Filter):
    type: Literal["hook"]
    callable: str = Field(pattern=r"^[\w.]+:[\w.]+$")  # package.module:function
    action: Action = "block"
    timeout_seconds: float = Field(2.0, gt=0)


FilterConfig = Annotated[BlocklistConfig | PiiConfig | HookConfig, Field(discriminator="type")]
Profile = tuple[FilterConfig, ...]
