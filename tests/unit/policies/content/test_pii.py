from __future__ import annotations

import time

import pytest

from policies.content import ContentProfile, PiiConfig
from policies.content.pii import KINDS, find, luhn


def kinds(text: str) -> list[str]:
    return [kind for kind, _, _ in find(text, KINDS)]


def test_each_kind_is_found() -> None:
    assert kinds("mail a.b+c@example.co.uk now") == ["email"]
    assert kinds("card 4111-1111-1111-1111 ok") == ["card"]
    assert kinds("IBAN GB82 WEST 1234 5698 7654 32") == ["iban"]
    assert kinds("SSN 123-45-6789") == ["ssn"]
    assert kinds("from 192.168.10.20") == ["ip"]
    assert kinds("from 2001:db8:0:0:0:0:0:1") == ["ip"]
    assert kinds("call +44 20 7946 0958") == ["phone"]


def test_checksums_reject_lookalikes() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert "card" not in kinds("order 4111 1111 1111 1112")
    assert "iban" not in kinds("GB82 WEST 1234 5698 7654 33")
    assert "ip" not in kinds("version 999.1.2.3")
    assert "ssn" not in kinds("000-12-3456")


def test_what_lookarounds_used_to_say_is_checked_on_the_match() -> None:
    assert "ssn" not in kinds("666-12-3456") and "ssn" not in kinds("912-12-3456")
    assert "ssn" not in kinds("123-00-6789") and "ssn" not in kinds("123-45-0000")
    # A phone number does not start inside a word or a longer number, nor end in one.
    assert "phone" not in kinds("id x4255550100y")
    spans = [(s, e) for kind, s, e in find("a +1 425 555 0100, b 206 555 0199.", KINDS)
             if kind == "phone"]
    assert spans == [(2, 17), (21, 33)]  # adjacent numbers sharing a separator: both


def ips(text: str) -> list[str]:
    return [text[s:e] for kind, s, e in find(text, KINDS) if kind == "ip"]


@pytest.mark.parametrize(("text", "found"), [
    ("from 192.168.10.20 and 2001:db8::1", ["192.168.10.20", "2001:db8::1"]),
    ("link-local fe80::1, loopback ::1.", ["fe80::1", "::1"]),
    ("ping fe80::1.", ["fe80::1"]),
    ("url http://[2001:db8::8a2e:370:7334]:8080/x", ["2001:db8::8a2e:370:7334"]),
    ("mapped ::ffff:192.0.2.128 here", ["::ffff:192.0.2.128"]),
    ("prefix 2001:db8:: and fe80::", ["2001:db8::", "fe80::"]),
    ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", ["2001:0db8:85a3:0000:0000:8a2e:0370:7334"]),
    ("(2001:db8::1)", ["2001:db8::1"]),
])
def test_ipv6_compressed_forms_are_found(text: str, found: list[str]) -> None:
    assert ips(text) == found


@pytest.mark.parametrize("text", [
    "std::map<int, int> and Foo::Bar::baz", "use a::b;", "xs[1::2] and xs[::2] and xs[::-1]",
    "at 10:30:00 on 12:34", "mac 00:1A:2B:3C:4D:5E", "the :: operator", "a:b:c", "ratio 1:2::3",
    "version 999.1.2.3", "1::2::3 is not an address",
])
def test_what_only_looks_like_ipv6_is_not_found(text: str) -> None:
    assert ips(text) == []


async def test_ipv6_is_redacted() -> None:
    profile = ContentProfile("p", [PiiConfig(type="pii", kinds=("ip",), action="redact")])
    outcome = await profile.check("from 2001:db8::1 via fe80::1 to ::1", "prompt")
    assert outcome.text == "from [IP] via [IP] to [IP]"


def test_ip_search_stays_linear() -> None:
    """Long runs of what an address is made of take time in proportion to their length."""
    def seconds(n: int) -> float:
        text = ("1:" * n) + " " + ("a:" * n) + " " + ("::" * n)
        started = time.process_time()
        for _ in range(3):
            ips(text)
        return time.process_time() - started

    small, large = seconds(20_000), seconds(160_000)
    # 8 x the input: linear is about 8 x the time, quadratic 64 x.
    assert large < 30 * max(small, 0.002)
