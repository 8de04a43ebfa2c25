"""The console's forms and query strings, each a pydantic model: what a browser sends,
typed and bounded, turned into the admin API's own bodies (which the admin API's
functions then validate as they validate JSON). A blank field is "not set"."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from multidict import MultiMapping
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.admin.consumers import invalid_request
from gateway.config.consumers import NAME

M = TypeVar("M", bound=BaseModel)


def read(model: type[M], fields: MultiMapping[Any], lists: tuple[str, ...] = ()) -> M:
    """A form (or query string) as `model`, or InvalidRequest naming the field."""
    data: dict[str, Any] = {}
    for key in set(fields.keys()):
        values = [v for v in fields.getall(key) if isinstance(v, str)]
        data[key] = values if key in lists else (values[0] if values else None)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None


class Form(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value


class Csrf(Form):
    csrf: str = Field(max_length=100)


class Login(Form):
    key: str = Field(min_length=1, max_length=4096)
    csrf: str = Field(max_length=100)


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class ConsumerForm(Form):
    """The create and edit form of a consumer (name only when creating)."""

    name: str | None = Field(None, max_length=200)
    deployments: list[str] = Field([], max_length=1000)
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)
    tokens_per_day: int | None = Field(None, gt=0)
    tokens_per_month: int | None = Field(None, gt=0)
    requests_per_day: int | None = Field(None, gt=0)
    cost_per_month: float | None = Field(None, gt=0)
    max_inflight: int | None = Field(None, ge=1)
    metadata: str | None = Field(None, max_length=20_000)  # key=value, one a line
    limits_by_deployment: str | None = Field(None, max_length=20_000)  # JSON
    quotas_by_deployment: str | None = Field(None, max_length=20_000)  # JSON
    # Shown only with auth.entra configured; None: not on the form, kept as stored.
    entra_object_ids: str | None = Field(None, max_length=20_000)
    entra_app_ids: str | None = Field(None, max_length=20_000)
    entra_groups: str | None = Field(None, max_length=20_000)
    entra_roles: str | None = Field(None, max_length=20_000)
    entra_shown: bool = False

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, text: str | None) -> str | None:
        for line in _lines(text):
            if "=" not in line or not line.split("=", 1)[0].strip():
                raise ValueError("each line of metadata is key=value")
        return text

    @field_validator("limits_by_deployment", "quotas_by_deployment")
    @classmethod
    def _json_object(cls, text: str | None) -> str | None:
        if text is not None:
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError("must be a JSON object, e.g. {\"chat\": {...}}") from None
            if not isinstance(value, dict):
                raise ValueError("must be a JSON object, e.g. {\"chat\": {...}}")
        return text

    def body(self, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The admin API's body for this form. Editing, a field the form does not show
        (a limit's burst, say) keeps what is stored."""
        stored = stored or {}
        limits = {**(stored.get("limits") or {}), "requests_per_minute": self.requests_per_minute,
                  "tokens_per_minute": self.tokens_per_minute}
        quotas = {**(stored.get("quotas") or {}), "tokens_per_day": self.tokens_per_day,
                  "tokens_per_month": self.tokens_per_month,
                  "requests_per_day": self.requests_per_day, "cost_per_month": self.cost_per_month}
        out: dict[str, Any] = {
            "deployments": self.deployments,
            "limits": _some(limits), "quotas": _some(quotas),
            "max_inflight": self.max_inflight,
            "metadata": dict(_pair(line) for line in _lines(self.metadata)),
            "limits_by_deployment": json.loads(self.limits_by_deployment or "{}"),
            "quotas_by_deployment": json.loads(self.quotas_by_deployment or "{}"),
        }
        if self.entra_shown:
            match = {"object_ids": _lines(self.entra_object_ids), "app_ids": _lines(self.entra_app_ids),
                     "groups": _lines(self.entra_groups), "roles": _lines(self.entra_roles)}
            out["entra"] = match if any(match.values()) else None
        if self.name is not None:
            out["name"] = self.name
        return out


def _some(values: dict[str, Any]) -> dict[str, Any] | None:
    kept = {k: v for k, v in values.items() if v is not None}
    return kept or None


def _pair(line: str) -> tuple[str, str]:
    key, _, value = line.partition("=")
    return key.strip(), value.strip()


class KeyForm(Form):
    description: str | None = Field(None, max_length=500)
    expires_at: datetime.datetime | None = None  # a datetime-local field, taken as UTC

    def body(self) -> dict[str, Any]:
        return {"description": self.description,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


class UsageQuery(Form):
    """The usage page's filters (also its CSV's: the same query string)."""

    start: str | None = Field(None, alias="from", pattern=r"^\d{4}-\d{2}$")
    end: str | None = Field(None, alias="to", pattern=r"^\d{4}-\d{2}$")
    by: Literal["day", "month"] = "day"
    stack: Literal["deployment", "consumer"] = "deployment"
    consumer: str | None = Field(None, pattern=NAME)
    deployment: str | None = Field(None, max_length=200)


class Cursor(Form):
    after: str | None = Field(None, pattern=NAME)  # consumers: the last name shown
    before: str | None = Field(None, max_length=100)  # keys: an id; audit: a number
