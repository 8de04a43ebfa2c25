"""The console's forms as the admin API's bodies: blank fields are "not set", metadata
lines become a mapping, by-deployment JSON must be an object, an edit keeps what the
form does not show, and bad input names its field."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from gateway.config.consumers import NewConsumer
from gateway.console.forms import ConsumerForm, KeyForm, Login, UsageQuery, read
from gateway.core.errors import InvalidRequest


def form(**fields: str | list[str]) -> MultiDict[str]:
    out: MultiDict[str] = MultiDict()
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            out.add(key, v)
    return out


def test_a_new_consumer_becomes_the_admin_apis_body() -> None:
    parsed = read(ConsumerForm, form(
        name="analytics", deployments=["chat", "embed"], requests_per_minute="600",
        tokens_per_minute="", tokens_per_day="100000", cost_per_month="12.5", max_inflight="",
        metadata="cost_center = 4711\n\nnote=a=b \"quoted\"", csrf="t"), lists=("deployments",))
    body = parsed.body()
    assert body["name"] == "analytics"
    assert body["deployments"] == ["chat", "embed"]
    assert body["limits"] == {"requests_per_minute": 600}
    assert body["quotas"] == {"tokens_per_day": 100000, "cost_per_month": 12.5}
    assert body["metadata"] == {"cost_center": "4711", "note": 'a=b "quoted"'}
    assert body["max_inflight"] is None and "entra" not in body
    NewConsumer.model_validate(body)  # what the admin API accepts


def test_an_edit_keeps_what_the_form_does_not_show() -> None:
    stored = {"limits": {"requests_per_minute": 5, "burst": {"requests": 50}},
              "quotas": {"tokens_per_day": 10}}
    body = read(ConsumerForm, form(deployments=["*"], requests_per_minute="7"),
                lists=("deployments",)).body(stored)
    assert body["limits"] == {"requests_per_minute": 7, "burst": {"requests": 50}}
    assert body["quotas"] is None  # the form's quota fields were all cleared
    assert "name" not in body


def test_entra_identities_only_when_the_form_shows_them() -> None:
    shown = read(ConsumerForm, form(deployments="chat", entra_shown="true",
                                    entra_object_ids="a\n b \n", entra_roles=""), lists=("deployments",))
    assert shown.body()["entra"] == {"object_ids": ["a", "b"], "app_ids": [], "groups": [], "roles": []}
    empty = read(ConsumerForm, form(deployments="chat", entra_shown="true"), lists=("deployments",))
    assert empty.body()["entra"] is None


@pytest.mark.parametrize(("fields", "named"), [
    ({"tokens_per_day": "many"}, "tokens_per_day"),
    ({"tokens_per_day": "-1"}, "tokens_per_day"),
    ({"metadata": "no equals sign"}, "metadata"),
    ({"limits_by_deployment": "[1]"}, "limits_by_deployment"),
    ({"quotas_by_deployment": "{not json"}, "quotas_by_deployment"),
    ({"name": "x" * 201}, "name"),
])
def test_bad_input_names_its_field(fields: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        read(ConsumerForm, form(**fields))
    assert refused.value.param == named


def test_keys_logins_and_usage_filters() -> None:
    assert read(KeyForm, form(description="", expires_at="")).body() == {
        "description": None, "expires_at": None}
    assert read(KeyForm, form(expires_at="2030-01-02T03:04")).body()["expires_at"] \
        == "2030-01-02T03:04:00"
    with pytest.raises(InvalidRequest):
        read(Login, form(key="", csrf="t"))
    assert read(Login, form(key="  k  ", csrf="t")).key == "k"  # a pasted newline or space
    query = read(UsageQuery, form(**{"from": "2026-01", "to": "2026-03", "by": "month"}))
    assert (query.start, query.end, query.by, query.stack) == ("2026-01", "2026-03", "month",
                                                               "deployment")
    for bad in ({"from": "2026-1"}, {"by": "week"}, {"consumer": "<script>"}):
        with pytest.raises(InvalidRequest):
            read(UsageQuery, form(**bad))
