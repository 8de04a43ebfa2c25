"""The one-pass screen: a profile that reads each text once with one RE2 Set finds
exactly what the same profile finds scanning with every pattern of every filter, and
scans everything when the Set could not read the text to its end."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.content import BlocklistConfig, ContentProfile, PiiConfig
from policies.content.screen import Screen

CONFIGS = [BlocklistConfig(type="blocklist", action="redact", terms=["forbidden plan", "zorp"],
                           patterns=[r"secret-\d+"]),
           PiiConfig(type="pii", action="redact")]
# What the patterns are made of, and what sits around them.
PIECES = st.sampled_from([
    "a", "Zorp", " forbidden  plan ", "secret-", "7", "2026", " ", "\n", "@", "x@corp.com",
    ".", ":", "::1", "2001:db8::1", "192.168.1.20", "+44 20 7946 0958", "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32", "123-45-6789", "-", "é", "\uff21", "\u200b"])
TEXTS = st.lists(PIECES, max_size=30).map("".join)


def unscreened() -> ContentProfile:
    profile = ContentProfile("plain", CONFIGS)
    profile._screen = Screen([])  # no Set: every filter scans every text
    return profile


SCREENED, PLAIN = ContentProfile("screened", CONFIGS), unscreened()


@settings(max_examples=500, deadline=None)
@given(TEXTS, st.sampled_from(["prompt", "completion"]))
async def test_the_screen_finds_exactly_what_every_pattern_finds(text: str, stage: str) -> None:
    screened, plain = await SCREENED.check(text, stage), await PLAIN.check(text, stage)
    assert [(f.category, f.start, f.end) for f in screened.findings] == \
        [(f.category, f.start, f.end) for f in plain.findings]
    assert screened.text == plain.text


async def test_a_text_without_a_match_is_read_once_and_passes() -> None:
    text = "The gateway relays this turn of an agent's history. " * 1000
    assert SCREENED._screen.hits(text) == {}
    assert not (await SCREENED.check(text, "prompt")).findings


def test_only_what_matched_is_named() -> None:
    hits = SCREENED._screen.hits("mail x@corp.com about the zorp")
    # The blocklist's terms (its first pattern), not its patterns; PII's e-mail kind only.
    assert hits == {0: frozenset({0}), 1: frozenset({0})}


def test_a_set_that_did_not_read_to_the_end_screens_nothing() -> None:
    """RE2's Set answers "no match" when its automaton runs out of memory; the pattern
    that always matches at the end is then missing too, and nothing is skipped."""
    screen = SCREENED._screen
    assert screen.read([]) is None
    assert screen.read([0]) is None  # a match, but not to the end
    complete = screen.hits("zorp")
    assert complete is not None and complete[0] == frozenset({0})


async def test_a_large_blocklist_is_screened_too() -> None:
    """Case folding grows a blocklist's program: 10,000 terms and the PII kinds in one Set
    need more than RE2's default 8 MB (which refused them: the profile did not load)."""
    import random
    import string

    rng = random.Random(7)
    terms = ["".join(rng.choice(string.ascii_lowercase) for _ in range(10)) for _ in range(10_000)]
    profile = ContentProfile("large", [BlocklistConfig(type="blocklist", terms=terms),
                                       PiiConfig(type="pii", action="redact")])
    assert profile._screen.hits("nothing here") == {}
    found = await profile.check(f"a {terms[1234]} and x@corp.com", "prompt")
    assert found.blocked and found.findings[0].start == 2


def test_patterns_too_many_for_one_set_leave_every_filter_scanning() -> None:
    screen = Screen([[("a" * 2_000 + "b", True)] * 4])
    import policies.content.screen as module

    saved = module.MAX_MEM
    try:
        module.MAX_MEM = 1 << 10  # far too little for any Set: Compile refuses
        tiny = Screen([[("(?:foo|bar)+baz" * 50, True)]])
    finally:
        module.MAX_MEM = saved
    assert tiny.hits("foobaz") is None  # no screen: scan everything
    assert screen.hits("a" * 2_000 + "B") == {0: frozenset({0, 1, 2, 3})}
