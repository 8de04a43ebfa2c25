"""Quotas and prices: a consumer's allowance per calendar day or month (tokens,
requests, cost, and the media units: images, audio seconds, characters of speech
input), and what a request costs.

A quota is a bucket that never refills, keyed by its period ("2026-12", "2026-12-02"
in the configured time zone), so a new period starts empty. It keeps what was used,
not what is left: a quota changed while its period runs applies at once. It is
reserved and settled like a rate limit (`policy`), in the same store.

Costs are integers in millionths of the currency (micros): no float drift across
millions of settlements.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.base import Usage
from policies.ratelimit.limits import Bucket, Kind

MICROS = 1_000_000


class QuotasConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tokens_per_day: int | None = Field(None, gt=0)
    tokens_per_month: int | None = Field(None, gt=0)
    requests_per_day: int | None = Field(None, gt=0)
    cost_per_month: float | None = Field(None, gt=0)  # in the deployments' pricing currency
    # Media units, counted whether or not the upstream reported tokens.
    images_per_day: int | None = Field(None, gt=0)
    images_per_month: int | None = Field(None, gt=0)
    audio_seconds_per_day: int | None = Field(None, gt=0)
    audio_seconds_per_month: int | None = Field(None, gt=0)
    characters_per_day: int | None = Field(None, gt=0)
    characters_per_month: int | None = Field(None, gt=0)


class ImagePrice(BaseModel):
    """The price of one image of a size and quality; a size or quality left out matches
    any. The first entry of `per_image` that matches an image prices it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    size: str | None = None  # "1024x1024", "1792x1024", ...
    quality: str | None = None  # "standard", "hd", "low", "medium", "high", ...
    price: float = Field(ge=0)

    def matches(self, size: str, quality: str) -> bool:
        return self.size in (None, size) and self.quality in (None, quality)


class PricingConfig(BaseModel):
    """Prices per million tokens, and for media the upstream reports no tokens for
    (dall-e-3, whisper, tts-1): per image, per audio second, per million characters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    input_per_million: float = Field(0.0, ge=0)
    cached_input_per_million: float | None = Field(None, ge=0)  # default: the input price
    output_per_million: float = Field(0.0, ge=0)
    reasoning_per_million: float | None = Field(None, ge=0)  # default: the output price
    per_image: tuple[ImagePrice, ...] = ()
    per_audio_second: float | None = Field(None, ge=0)
    per_million_characters: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some_price(self) -> PricingConfig:
        if "input_per_million" not in self.model_fields_set and "output_per_million" not in \
                self.model_fields_set and not (self.per_image or self.per_audio_second is not None
                                               or self.per_million_characters is not None):
            raise ValueError("pricing names no price: give input_per_million and "
                             "output_per_million, or a media price (per_image, per_audio_second, "
                             "per_million_characters)")
        return self

    def image_price(self, size: str, quality: str) -> float:
        return next((p.price for p in self.per_image if p.matches(size, quality)), 0.0)


def unit_cost_micros(usage: Usage, pricing: PricingConfig) -> float:
    """What a request's media units cost (in micros, unrounded)."""
    total = 0.0
    if usage.images and pricing.per_image:
        total += usage.images * pricing.image_price(usage.image_size, usage.image_quality) * MICROS
    if usage.audio_seconds and pricing.per_audio_second:
        total += usage.audio_seconds * pricing.per_audio_second * MICROS
    if usage.characters and pricing.per_million_characters:
        total += usage.characters * pricing.per_million_characters  # per million x count = micros
    return total


def cost_micros(usage: Usage, pricing: PricingConfig | None) -> int:
    """What a request cost, from its real usage: cached input and reasoning at their own
    prices when the upstream reported them (both are parts of input and output); a
    request the upstream reported no tokens for (`by_units`) at its media units' prices."""
    if pricing is None:
        return 0
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    cached_price = pricing.input_per_million if pricing.cached_input_per_million is None \
        else pricing.cached_input_per_million
    reasoning_price = pricing.output_per_million if pricing.reasoning_per_million is None \
        else pricing.reasoning_per_million
    total = ((usage.prompt_tokens - cached) * pricing.input_per_million
             + cached * cached_price
             + (usage.completion_tokens - reasoning) * pricing.output_per_million
             + reasoning * reasoning_price)
    if usage.by_units:
        total += unit_cost_micros(usage, pricing)
    return math.ceil(total)  # per million tokens x tokens = micros of the currency


def reserved_cost_micros(prompt: int, completion: int, pricing: PricingConfig | None,
                         units: Usage | None = None) -> int:
    """The most a request may cost before its usage is known: its tokens, and the media
    units it expects at their prices (images at the dearest per-image price), since the
    upstream may report no tokens for them."""
    if pricing is None:
        return 0
    output = max(pricing.output_per_million, pricing.reasoning_per_million or 0)
    total = prompt * pricing.input_per_million + completion * output
    if units is not None:
        dearest = max((p.price for p in pricing.per_image), default=0.0)
        total += unit_cost_micros(Usage(audio_seconds=units.audio_seconds,
                                        characters=units.characters), pricing)
        total += units.images * dearest * MICROS
    return math.ceil(total)


Window = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Period:
    window: Window
    ident: str  # "2026-12-02" or "2026-12"
    ends: float  # epoch seconds


def period(window: Window, now: float, zone: ZoneInfo) -> Period:
    local = datetime.datetime.fromtimestamp(now, zone)
    if window == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + datetime.timedelta(days=1)).replace(tzinfo=None)
        ident = start.strftime("%Y-%m-%d")
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start.replace(year=start.year + 1, month=1) if start.month == 12
               else start.replace(month=start.month + 1)).replace(tzinfo=None)
        ident = start.strftime("%Y-%m")
    # Midnight where the clock says so: across a DST change a day is 23 or 25 hours.
    return Period(window, ident, end.replace(tzinfo=zone).timestamp())


# kind -> (the quota field, its window)
QUOTA_FIELDS: dict[Kind, tuple[str, Window]] = {
    "quota_tokens_day": ("tokens_per_day", "day"),
    "quota_tokens_month": ("tokens_per_month", "month"),
    "quota_requests_day": ("requests_per_day", "day"),
    "quota_cost_month": ("cost_per_month", "month"),
    "quota_images_day": ("images_per_day", "day"),
    "quota_images_month": ("images_per_month", "month"),
    "quota_audio_seconds_day": ("audio_seconds_per_day", "day"),
    "quota_audio_seconds_month": ("audio_seconds_per_month", "month"),
    "quota_characters_day": ("characters_per_day", "day"),
    "quota_characters_month": ("characters_per_month", "month"),
}
# A unit quota's kind -> the Usage field it counts.
UNIT_OF: dict[Kind, str] = {
    "quota_images_day": "images", "quota_images_month": "images",
    "quota_audio_seconds_day": "audio_seconds", "quota_audio_seconds_month": "audio_seconds",
    "quota_characters_day": "characters", "quota_characters_month": "characters",
}


def quota_buckets(consumer: str, deployment: str | None, quotas: QuotasConfig | None, now: float,
                  zone: ZoneInfo) -> tuple[Bucket, ...]:
    """The quota buckets of a consumer (deployment None) or of a consumer on one deployment.
    Every key shares the hash tag {consumer}: a consumer's quotas live on one Cluster slot."""
    if quotas is None:
        return ()
    scope = f"d:{deployment}" if deployment else "all"
    out = []
    for kind, (name, window) in QUOTA_FIELDS.items():
        value = getattr(quotas, name)
        if value is None:
            continue
        p = period(window, now, zone)
        capacity = float(round(value * MICROS)) if kind == "quota_cost_month" else float(value)
        out.append(Bucket(f"mg:q:{{{consumer}}}:{scope}:{kind}:{p.ident}",
                          "consumer" if deployment is None else "consumer-deployment",
                          kind, capacity, 0.0, resets_at=p.ends, period=p.ident))
    return tuple(out)
