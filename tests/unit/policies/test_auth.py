from __future__ import annotations

import pytest

from policies import ANONYMOUS, Unauthenticated
from policies.auth import Authenticator, ConsumerConfig, hash_key, presented_credentials


def consumers() -> list[ConsumerConfig]:
    return [
        ConsumerConfig(name="a", api_keys=(hash_key("key-a"),), deployments=("chat",)),
        ConsumerConfig(name="b", api_keys=(hash_key("key-b"),), deployments=("*",)),
    ]


def test_hash_key_is_a_sha256_digest() -> None:
    assert hash_key("k") == "sha256:" + (
        "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a")


def test_both_headers_are_read_and_deduplicated() -> None:
    assert presented_credentials({"api-key": "k", "Authorization": "Bearer k"}) == ["k"]
    assert presented_credentials({"Authorization": "bearer  x "}) == ["x"]
    assert presented_credentials({"Authorization": "Basic x"}) == []


async def test_keys_map_to_consumers() -> None:
    auth = Authenticator(consumers(), allow_anonymous=False)
    a = await auth.authenticate({"api-key": "key-a"})
    assert a.consumer == "a" and a.may_use("chat") and not a.may_use("other")
    b = await auth.authenticate({"Authorization": "Bearer key-b"})
    assert b.consumer == "b" and b.may_use("anything")
    # One wrong and one right credential: the right one wins.
    assert (await auth.authenticate({"api-key": "wrong", "Authorization": "Bearer key-a"})).consumer == "a"


async def test_missing_and_wrong_keys() -> None:
    auth = Authenticator(consumers(), allow_anonymous=False)
    with pytest.raises(Unauthenticated, match="missing"):
        await auth.authenticate({})
    with pytest.raises(Unauthenticated, match="invalid"):
        await auth.authenticate({"api-key": "key-c"})


async def test_anonymous_sidecar_accepts_whatever_the_sdk_sends() -> None:
    auth = Authenticator(consumers(), allow_anonymous=True)
    assert (await auth.authenticate({"api-key": "unused"})).consumer == ANONYMOUS
    assert (await auth.authenticate({"api-key": "key-a"})).consumer == "a"
