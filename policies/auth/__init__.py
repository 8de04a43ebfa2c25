"""Who is calling: API key digests, consumers, Entra ID tokens, and the authenticator
that turns a request's credential into a Caller."""

from policies.auth.api_keys import KeyRing, RuntimeKey, hash_key
from policies.auth.authenticator import Authenticator, presented_credentials
from policies.auth.consumers import ConsumerConfig
from policies.auth.entra import EntraConfig, EntraMatch, EntraValidator

__all__ = [
    "Authenticator", "ConsumerConfig", "EntraConfig", "EntraMatch", "EntraValidator", "KeyRing",
    "RuntimeKey",
    "hash_key", "presented_credentials",
]
