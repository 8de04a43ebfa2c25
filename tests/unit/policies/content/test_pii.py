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
