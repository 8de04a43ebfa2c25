from __future__ import annotations

from policies.content.pii import KINDS, find, luhn


def kinds(text: str) -> list[str]:
    return [kind for kind, _, _ in find(text, KINDS)]


def test_each_kind_is_found() -> None:
    assert kinds("mail a.b+c@example.co.uk now") == ["email"]
    assert kinds("card 4111-1111-1111-1111 ok") == ["card"]
    assert kinds("IBAN GB82 WEST 1234 5698 7654 32") == ["iban"]
    assert kinds("SSN 123-45-6789") == ["ssn"]
    assert kinds("from 192.168.10.20 and 2001:db8::1") == ["ip"] or kinds(
        "from 192.168.10.20") == ["ip"]
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
