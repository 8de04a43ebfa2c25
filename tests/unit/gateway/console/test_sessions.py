"""What ties a console session to its credential: the admin key's name and digest as
configured now (a key removed or replaced ends its sessions), or Entra sign-in being on."""

from __future__ import annotations

from gateway.config import AdminConfig
from gateway.console.sessions import proof
from policies.auth import hash_key


def test_a_session_outlives_its_credential_never() -> None:
    admin = AdminConfig(api_keys={"ops": hash_key("k1")})
    tied = proof(admin, "key:ops")
    assert tied is not None and len(tied) == 64
    assert hash_key("k1") not in tied and hash_key("k1").removeprefix("sha256:") not in tied
    assert proof(AdminConfig(api_keys={"ops": hash_key("k2")}), "key:ops") != tied  # replaced
    assert proof(AdminConfig(api_keys={"other": hash_key("k1")}), "key:ops") is None  # removed
    assert proof(admin, "entra:someone") is None  # no Entra sign-in here
    assert proof(admin, "cli:root") is None
    with_entra = AdminConfig(entra={"roles": ["Gateway.Admin"], "client_id": "c"})
    assert proof(with_entra, "entra:someone") is not None
