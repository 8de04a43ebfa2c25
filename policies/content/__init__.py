"""Content filters: profiles of blocklist, PII and custom-hook filters, run on
prompts and completions, streamed ones included."""

from policies.content.config import BlocklistConfig, FilterConfig, HookConfig, PiiConfig, Profile
from policies.content.filters import Verdict
from policies.content.policy import ContentFilterPolicy, ContentStats
from policies.content.profile import ContentProfile

__all__ = [
    "BlocklistConfig", "ContentFilterPolicy", "ContentProfile", "ContentStats", "FilterConfig",
    "HookConfig", "PiiConfig", "Profile", "Verdict",
]
