from policies.auth.api_keys import KeyRing, hash_key
from policies.auth.authenticator import Authenticator, presented_credentials
from policies.auth.consumers import ConsumerConfig

__all__ = ["Authenticator", "ConsumerConfig", "KeyRing", "hash_key", "presented_credentials"]
