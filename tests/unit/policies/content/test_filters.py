"""The pattern filters as a profile applies them: written-differently terms are still
found, redactions land on the original characters, configured patterns are RE2."""

# Look-alike characters are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest
from pydantic import ValidationError

from policies.content import BlocklistConfig, ContentProfile, PiiConfig
from policies.content.normalize import normalize


def profile(*terms: str, patterns: tuple[str, ...] = (), action: str = "block") -> ContentProfile:
    return ContentProfile("p", [BlocklistConfig(type="blocklist", terms=terms, patterns=patterns,
                                                action=action)])  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    "the forbidden plan", "the FORBIDDEN PLAN", "the forbidden\n\n  plan", "the forbidden\u00a0plan",
    "the ｆｏｒｂｉｄｄｅｎ ｐｌａｎ", "the for\u200bbidden pl\u00adan", "the Forbidden\u2003Plan.",
])
async def test_terms_are_found_however_they_are_written(text: str) -> None:
    outcome = await profile("forbidden plan").check(text, "prompt")
    assert outcome.blocked, text


@pytest.mark.parametrize("text", ["forbiddenplan", "unforbidden plan", "the forbidden plans",
                                  "éforbidden plan", "forbidden plan_x"])
async def test_terms_match_whole_words_only(text: str) -> None:
    assert not (await profile("forbidden plan").check(text, "prompt")).blocked


async def test_adjacent_terms_and_a_longer_term_that_fails_its_boundary() -> None:
    outcome = await profile("zorp", "zorp-x", action="redact").check("zorp zorp-xy zorp", "prompt")
    assert outcome.text == "[BLOCKED] [BLOCKED]-xy [BLOCKED]"


async def test_redaction_replaces_the_original_characters() -> None:
    pii = ContentProfile("p", [PiiConfig(type="pii", kinds=("email",))])
    text = "ｍａｉｌ ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ now ﬁne"
    outcome = await pii.check(text, "prompt")
    assert outcome.text == "ｍａｉｌ [EMAIL] now ﬁne"
    assert (await profile("zorp", action="redact").check("a ｚｏｒｐ b", "prompt")).text == \
        "a [BLOCKED] b"


def test_normalized_offsets_map_back() -> None:
    n = normalize("aﬁ\u200bb")
    assert n.text == "afib"
    assert n.span(1, 3) == (1, 2) and n.span(3, 4) == (3, 4)


async def test_patterns_are_re2_and_checked_at_load() -> None:
    outcome = await profile(patterns=(r"secret-\d+",)).check("my SECRET-42", "prompt")
    assert outcome.blocked
    with pytest.raises(ValidationError, match="not valid RE2"):
        BlocklistConfig(type="blocklist", patterns=(r"(a)\1",))
    with pytest.raises(ValidationError, match="not valid RE2"):
        BlocklistConfig(type="blocklist", patterns=(r"(?<!x)y",))


async def test_annotate_findings_are_reported_not_redacted() -> None:
    outcome = await profile("zorp", action="annotate").check("a zorp", "completion")
    assert outcome.text == "a zorp" and outcome.results["custom_blocklist"]["filtered"] is False
