"""Quota periods and prices on their own clock (`now` is an argument here, not a live
object's attribute): a day ends at midnight where the quotas are kept, a month on the
first, a new period is a new (empty) bucket, and costs are exact micros."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from policies.base import Usage
from policies.ratelimit.quotas import (
    PricingConfig,
    QuotasConfig,
    cost_micros,
    period,
    quota_buckets,
    reserved_cost_micros,
)

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def at(zone: ZoneInfo, *when: int) -> float:
    return datetime.datetime(*when, tzinfo=zone).timestamp()  # type: ignore[misc]


def test_a_day_ends_at_local_midnight() -> None:
    before = period("day", at(TOKYO, 2026, 12, 2, 23, 59, 30), TOKYO)
    after = period("day", at(TOKYO, 2026, 12, 3, 0, 0, 1), TOKYO)
    assert before.ident == "2026-12-02" and after.ident == "2026-12-03"
    assert before.ends == at(TOKYO, 2026, 12, 3) == at(UTC, 2026, 12, 2, 15)
    # The same instant is still 2 December in UTC (14:59:30).
    assert period("day", at(TOKYO, 2026, 12, 2, 23, 59, 30), UTC).ident == "2026-12-02"
    assert period("day", at(TOKYO, 2026, 12, 3, 0, 0, 1), UTC).ident == "2026-12-02"


def test_a_day_across_a_daylight_saving_change_is_23_or_25_hours() -> None:
    spring = period("day", at(BERLIN, 2026, 3, 29, 12), BERLIN)
    autumn = period("day", at(BERLIN, 2026, 10, 25, 12), BERLIN)
    assert spring.ends - at(BERLIN, 2026, 3, 29) == 23 * 3600
    assert autumn.ends - at(BERLIN, 2026, 10, 25) == 25 * 3600


def test_a_month_ends_on_the_first_and_december_ends_in_january() -> None:
    assert period("month", at(UTC, 2026, 2, 28, 23, 59), UTC).ident == "2026-02"
    assert period("month", at(UTC, 2026, 2, 28, 23, 59), UTC).ends == at(UTC, 2026, 3, 1)
    december = period("month", at(UTC, 2026, 12, 31, 12), UTC)
    assert december.ident == "2026-12" and december.ends == at(UTC, 2027, 1, 1)
    assert period("month", at(UTC, 2027, 1, 1, 0, 0, 1), UTC).ident == "2027-01"


def test_the_next_period_is_a_new_bucket_with_the_whole_quota() -> None:
    quotas = QuotasConfig(tokens_per_day=300, requests_per_day=2, cost_per_month=0.5)
    today = quota_buckets("team", None, quotas, at(TOKYO, 2026, 12, 2, 23, 59, 30), TOKYO)
    tomorrow = quota_buckets("team", None, quotas, at(TOKYO, 2026, 12, 3, 0, 0, 1), TOKYO)
    by_kind = {b.kind: b for b in today}
    assert set(by_kind) == {"quota_tokens_day", "quota_requests_day", "quota_cost_month"}
    assert by_kind["quota_tokens_day"].capacity == 300
    assert by_kind["quota_cost_month"].capacity == 500_000  # micros
    assert by_kind["quota_tokens_day"].resets_at == at(TOKYO, 2026, 12, 3)
    for old, new in zip(today, tomorrow, strict=True):
        if old.kind.endswith("_day"):  # a new day: new keys, which start empty
            assert old.key != new.key and new.key.endswith(":2026-12-03")
        else:  # the month goes on
            assert old.key == new.key and new.key.endswith(":2026-12")
    # A consumer's quotas share its hash tag; a deployment's are apart from the others.
    assert all(b.key.startswith("mg:q:{team}:all:") and b.scope == "consumer" for b in today)
    [on_chat] = quota_buckets("team", "chat", QuotasConfig(requests_per_day=3), 0.0, UTC)
    assert on_chat.key.startswith("mg:q:{team}:d:chat:") and on_chat.scope == "consumer-deployment"
    assert quota_buckets("team", None, None, 0.0, UTC) == ()


def test_costs_are_micros_with_cached_and_reasoning_tokens_at_their_prices() -> None:
    prices = PricingConfig(input_per_million=1000, cached_input_per_million=500,
                           output_per_million=2000, reasoning_per_million=4000)
    usage = Usage(prompt_tokens=10, completion_tokens=20, cached_tokens=4, reasoning_tokens=6)
    assert cost_micros(usage, prices) == 6 * 1000 + 4 * 500 + 14 * 2000 + 6 * 4000
    # Without their own prices, cached input and reasoning cost what input and output do.
    plain = PricingConfig(input_per_million=1000, output_per_million=2000)
    assert cost_micros(usage, plain) == 10 * 1000 + 20 * 2000
    # More cached or reasoning tokens than there are tokens: capped, never negative.
    odd = Usage(prompt_tokens=2, completion_tokens=1, cached_tokens=9, reasoning_tokens=9)
    assert cost_micros(odd, prices) == 2 * 500 + 1 * 4000
    assert cost_micros(usage, None) == 0
    # A fraction of a micro is rounded up, as a price is never undercharged.
    assert cost_micros(Usage(prompt_tokens=1), PricingConfig(input_per_million=0.25,
                                                             output_per_million=0)) == 1


def test_a_reservation_costs_the_dearest_output_price() -> None:
    prices = PricingConfig(input_per_million=1000, output_per_million=2000, reasoning_per_million=4000)
    assert reserved_cost_micros(10, 20, prices) == 10 * 1000 + 20 * 4000
    assert reserved_cost_micros(10, 20, None) == 0


def test_quota_and_price_settings_are_checked() -> None:
    with pytest.raises(ValidationError):
        QuotasConfig(tokens_per_day=0)
    with pytest.raises(ValidationError):
        PricingConfig(currency="euro", input_per_million=1, output_per_million=1)
    with pytest.raises(ValidationError):
        QuotasConfig(tokens_per_week=5)  # type: ignore[call-arg]
