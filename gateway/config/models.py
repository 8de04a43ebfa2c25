"""The gateway's config as pydantic models: unknown keys rejected, every value checked.

A loaded `GatewayConfig` is an immutable snapshot; environment variables with
the `MODEL_GATEWAY_` prefix (and `__` for nesting) override the file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config.consumers import ConsumerProblem, check_consumer
from gateway.core.environment import merged, overrides
from gateway.core.operations import Operation
from gateway.core.redis_client import SCHEMES, SENTINEL_SCHEME, parse_sentinel_url
from gateway.providers import PROVIDERS
from policies.auth import ConsumerConfig, EntraConfig
from policies.auth.api_keys import DIGEST_RE
from policies.content import Profile
from policies.ratelimit import LimitsConfig, PricingConfig
from policies.service_auth import NoAuth, ServiceAuth


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Strict):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # A multipart upload (an image edit, a transcription's audio), whole: Azure's limit.
    max_upload_bytes: int = Field(25 * 1024 * 1024, gt=0)
    # Where an upload whose file comes before its text fields waits for the rest of the
    # form (unnamed temporary files); default: the system's temporary folder.
    upload_spool_dir: Path | None = None
    drain_seconds: float = Field(30.0, ge=0)
    # How often the config file is looked at for changes (a Kubernetes ConfigMap update
    # swaps a symlink and sends no signal); 0: only SIGHUP and POST /admin/v1/reload.
    config_watch_seconds: float = Field(2.0, ge=0)
    # An upstream answer (a whole body, or all of a stream) larger than this is cut off.
    max_response_bytes: int = Field(256 * 1024 * 1024, gt=0)
    # One streamed event (or line) from an upstream.
    max_event_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # Slow clients: complete headers within this of a connection's start (or of a
    # request's first byte), the whole body within body_timeout_seconds, and an idle
    # kept-alive connection is closed after keepalive_seconds.
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(60.0, gt=0)
    keepalive_seconds: float = Field(75.0, gt=0)
    # Open connections per process; one more is answered 503 and closed (0: no cap).
    max_connections: int = Field(16384, ge=0)
    # Model requests being served per process (503 over it), and per consumer (429 over
    # it; a consumer's own max_inflight overrides). 0: no cap.
    max_inflight_requests: int = Field(8192, ge=0)
    max_inflight_per_consumer: int = Field(0, ge=0)
    # Request bodies: JSON nested deeper than this, or with more values than
    # max_json_items (counted as commas and opening brackets outside strings, plus one),
    # is refused (400) before anything parses it.
    max_json_depth: int = Field(64, ge=2, le=1000)
    max_json_items: int = Field(100_000, ge=1)
    # Request headers to forward upstream beyond the built-in set (see docs/contract.md):
    # names, or prefixes ending in "*" ("x-tenant-*"). Credentials never cross.
    forward_request_headers: tuple[str, ...] = ()
    # Load the tokenizer's encoding (~70 MB) at start, so that the first stream without
    # usage is counted without waiting for it; otherwise it is loaded when first needed.
    preload_tokenizer: bool = False


class RedisConfig(Strict):
    # No url: rate limits are kept in this process (one replica only).
    url: str | None = None
    # Redis Cluster: the url names any one node.
    cluster: bool = False
    # When Redis cannot be asked: admit and count (open), or answer 503 (closed).
    on_error: Literal["open", "closed"] = "open"
    # Per Redis call; after a failure Redis is not asked again for a second.
    timeout_seconds: float = Field(0.5, gt=0)

    @model_validator(mode="after")
    def _known_url(self) -> RedisConfig:
        if self.url is None:
            return self
        scheme = urlsplit(self.url).scheme
        if scheme not in SCHEMES:
            raise ValueError(f"redis.url must start with one of {', '.join(s + '://' for s in SCHEMES)}")
        if scheme == SENTINEL_SCHEME:
            parse_sentinel_url(self.url)
            if self.cluster:
                raise ValueError("redis.cluster and a redis+sentinel URL exclude each other")
        return self


class DatabaseConfig(Strict):
    """What must last: stored-response owners, runtime consumers and keys, the usage
    ledger, the audit trail. SQLite unless a PostgreSQL URL is given."""

    # false: no database at all (a sidecar that only forwards): no admin API, no ledger,
    # and stored responses cannot be followed up (the gateway could not check their owner).
    enabled: bool = True
    # sqlite:///relative/path.db, sqlite:////absolute/path.db, or postgresql://user@host/db
    url: str = "sqlite:///model-gateway.db"
    # The PostgreSQL password, never in the URL: an environment variable or a file.
    password_env: str | None = None
    password_file: Path | None = None
    # auto: migrate at start-up; manual: refuse to start until `model-gateway db upgrade`.
    migrate: Literal["auto", "manual"] = "auto"

    @model_validator(mode="after")
    def _known_url(self) -> DatabaseConfig:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("database.url must start with sqlite:/// or postgresql://")
        if urlsplit(self.url).password:
            raise ValueError("database.url must not hold a password: use password_env or "
                             "password_file")
        if self.password_env and self.password_file:
            raise ValueError("name one of database.password_env and database.password_file")
        return self


class AdminEntra(Strict):
    # Entra tokens (validated as auth.entra says) carrying one of these app roles.
    roles: tuple[str, ...] = Field(min_length=1)
    # The console's Microsoft sign-in (authorization code with PKCE), offered when set:
    # the app registration whose app roles are `roles` (the ID token must carry one).
    client_id: str | None = None
    # A confidential client's secret ("Web" platform), by the name of its variable;
    # without it the console signs in as a public client, with PKCE alone.
    client_secret_env: str | None = None
    # The tenant to sign in to; default: the first of auth.entra.tenant_ids.
    tenant_id: str | None = None
    # Where Entra sends the browser back (as registered); default: the console's own
    # origin + /ui/login/entra/callback.
    redirect_uri: str | None = None
    authority: str = "https://login.microsoftonline.com"


class AdminConfig(Strict):
    """Who may use the admin API (/admin/v1): never a consumer's credential."""

    # name -> digest (`model-gateway hash-key`); the name is what the audit trail records.
    api_keys: dict[str, str] = {}
    entra: AdminEntra | None = None
    # How often a replica looks for consumers and keys changed elsewhere.
    refresh_seconds: float = Field(1.0, gt=0, le=60)
    # A port of its own for the admin API (on server.host): it is then served there
    # only, so that a NetworkPolicy or firewall can keep it from consumers. None: on the
    # gateway's port.
    port: int | None = Field(None, ge=1, le=65535)

    @field_validator("api_keys")
    @classmethod
    def _digests(cls, keys: dict[str, str]) -> dict[str, str]:
        for name, digest in keys.items():
            if not DIGEST_RE.match(digest):
                raise ValueError(f"admin.api_keys.{name} must be a digest ('sha256:<64 hex>'): "
                                 "make one with `model-gateway hash-key`")
        return keys


class LedgerConfig(Strict):
    """Settled usage per consumer, deployment and hour, in the database."""

    enabled: bool = True
    flush_seconds: float = Field(1.0, gt=0, le=300)
    # Where each process spools what it has not written yet (a local, writable folder
    # that survives a restart of the process: an emptyDir in Kubernetes). Default: the
    # system's temporary folder.
    spool_dir: Path | None = None


class AuthConfig(Strict):
    # Accept callers without a credential: only for a sidecar listening on loopback.
    allow_anonymous: bool = False
    # Accept Microsoft Entra ID access tokens as bearer credentials.
    entra: EntraConfig | None = None


BackendAuth = ServiceAuth


class Timeouts(Strict):
    connect: float = Field(10.0, gt=0)
    # Until the upstream's response headers arrive.
    response: float = Field(120.0, gt=0)
    # Longest silence between two reads of the response body (a stalled stream).
    idle: float = Field(120.0, gt=0)
    # The whole upstream exchange, body and stream included; none by default.
    total: float | None = Field(None, gt=0)


class Spillover(Strict):
    """Prefer the next backend while this one reports little quota left."""

    remaining_tokens: int | None = Field(None, ge=0)
    remaining_requests: int | None = Field(None, ge=0)
    # How long to prefer the others after a low reading.
    seconds: float = Field(1.0, gt=0)


def _alternative_api_key(schema: dict[str, Any]) -> None:
    """`api`, the older name of `provider`, is accepted in its place (not beside it)."""
    properties = schema["properties"]
    properties["api"] = {**properties["provider"], "deprecated": True,
                         "description": "the older name of `provider`"}
    schema["required"] = [r for r in schema["required"] if r != "provider"]
    schema["oneOf"] = [{"required": ["provider"]}, {"required": ["api"]}]


class BackendConfig(Strict):
    model_config = ConfigDict(json_schema_extra=_alternative_api_key)

    url: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$")
    # Who serves it: a name in gateway.providers.PROVIDERS (`api`, its older name, is
    # accepted too). The upstream's provider, not the API a client speaks.
    provider: str = Field(validation_alias=AliasChoices("provider", "api"),
                          json_schema_extra={"enum": list(sorted(PROVIDERS))})
    # The upstream deployment name (azure-openai only).
    deployment: str | None = None
    # The model name sent upstream in the body; defaults to the deployment's `model`.
    model: str | None = None
    api_version: str | None = None
    auth: BackendAuth = NoAuth(type="none")
    priority: int = Field(0, ge=0)
    weight: int = Field(1, ge=1)
    # Label in metrics and logs; defaults to host[/deployment].
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9._:/-]+$")
    timeouts: Timeouts = Timeouts()
    spillover: Spillover | None = None
    # What this backend's tokens cost, when it differs from the deployment's pricing.
    pricing: PricingConfig | None = None
    # The longest an upstream's 429 may keep this backend out (its retry-after is
    # untrusted: an absurd value must not disable the backend for good).
    max_cooldown_seconds: float = Field(300.0, gt=0)
    # What this backend serves natively, when it is less than its provider serves (a
    # model Azure serves only on the Responses API: `apis: [responses]`); the other
    # APIs reach it through translation (gateway.translate). Operations by their paths.
    apis: tuple[Operation, ...] | None = Field(None, min_length=1)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, name: str) -> str:
        if name not in PROVIDERS:
            raise ValueError(f"Input should be one of the providers {', '.join(sorted(PROVIDERS))}, "
                             f"not {name!r}")
        return name

    @model_validator(mode="after")
    def _provider_needs(self) -> BackendConfig:
        provider = PROVIDERS[self.provider]
        provider.check(self)
        if self.apis is not None and not set(self.apis) <= provider.operations:
            extra = ", ".join(sorted(set(self.apis) - provider.operations))
            raise ValueError(f"`apis` names {extra}, which provider {self.provider} does not "
                             f"serve (it serves {', '.join(sorted(provider.operations))})")
        return self


class BreakerConfig(Strict):
    # Consecutive failures that open a backend's breaker, and how long it stays open
    # before one probe request may try it again.
    failures: int = Field(5, ge=1)
    open_seconds: float = Field(30.0, gt=0)
    # Also open when this share of the last window_seconds' calls failed (at least
    # min_requests of them); off unless set.
    failure_ratio: float | None = Field(None, gt=0, le=1)
    window_seconds: float = Field(30.0, gt=0)
    min_requests: int = Field(10, ge=1)


class RoutingConfig(Strict):
    # Backends tried for one request (the first included), within deadline_seconds.
    max_attempts: int = Field(3, ge=1)
    deadline_seconds: float = Field(120.0, gt=0)
    # Upstream statuses that move the request to the next backend.
    retry_on: tuple[int, ...] = (429, 500, 502, 503, 504, 529)  # 529: Anthropic overloaded
    breaker: BreakerConfig = BreakerConfig()


class DeploymentConfig(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:-]+$")
    model: str
    version: str | None = None
    capacity: Literal["provisioned", "standard", "global-standard", "data-zone"] | None = None
    # What /models/info reports.
    model_type: Literal["chat-completion", "completion", "embeddings", "image-embeddings"] = (
        "chat-completion"
    )
    provider: str = "AzureOpenAI"
    limits: LimitsConfig | None = None
    # A profile from content_filters; none means no filtering and no per-chunk cost.
    content_filter: str | None = None
    # Reserved against token limits when a request names no max_tokens.
    default_max_tokens: int = Field(1024, gt=0)
    # The tokenizer encoding that counts what an upstream did not ("o200k_base",
    # "cl100k_base"); default: the model's own by tiktoken's table, else o200k_base.
    tokenizer: Literal["o200k_base", "cl100k_base"] | None = None
    # What a million tokens cost: every settled request gets a cost (ledger, cost quotas).
    pricing: PricingConfig | None = None
    backends: tuple[BackendConfig, ...] = Field(min_length=1)
    routing: RoutingConfig = RoutingConfig()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GatewayConfig(Strict):
    """The whole config: the file's keys, with the environment's overrides
    (`config.environment`) laid over them however the config is made."""

    server: ServerConfig = ServerConfig()
    redis: RedisConfig = RedisConfig()
    database: DatabaseConfig = DatabaseConfig()
    admin: AdminConfig = AdminConfig()
    ledger: LedgerConfig = LedgerConfig()
    auth: AuthConfig = AuthConfig()
    consumers: tuple[ConsumerConfig, ...] = ()
    deployments: tuple[DeploymentConfig, ...] = Field(min_length=1)
    content_filters: dict[str, Profile] = {}
    # Streamed completion text held back for the filters to see first (characters).
    content_holdback_chars: int = Field(64, ge=1)
    # Filter time one request may use before it is refused (503 policy_unavailable).
    content_filter_budget_seconds: float = Field(5.0, gt=0)
    # Where quota days and months begin (an IANA zone: "UTC", "Europe/Paris").
    quotas_timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _environment_wins(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        return merged(given, overrides(cls.model_fields, _MAPPINGS))

    @property
    def has_limits(self) -> bool:
        return any(d.limits for d in self.deployments) or any(
            c.limits or c.limits_by_deployment or c.quotas or c.quotas_by_deployment
            for c in self.consumers
        )

    def _without_database(self) -> None:
        """What needs the database refuses to start without it, rather than silently
        keeping nothing."""
        if self.ledger.enabled:
            raise ValueError("ledger.enabled needs the database (the usage ledger is kept "
                             "there): set ledger.enabled: false, or database.enabled: true")
        if self.admin.api_keys or self.admin.entra is not None:
            raise ValueError("the admin API needs the database (consumers and keys made at "
                             "runtime, the audit trail): leave admin out, or set "
                             "database.enabled: true")

    @model_validator(mode="after")
    def _consistent(self) -> GatewayConfig:
        try:
            ZoneInfo(self.quotas_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"quotas_timezone {self.quotas_timezone!r} is not a known time zone") from None
        names = [d.name for d in self.deployments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"deployment names must be unique; repeated: {', '.join(dupes)}")
        consumers = [c.name for c in self.consumers]
        dupes = sorted({n for n in consumers if consumers.count(n) > 1})
        if dupes:
            raise ValueError(f"consumer names must be unique; repeated: {', '.join(dupes)}")
        if not self.database.enabled:
            self._without_database()
        known = set(names)
        for d in self.deployments:
            if d.content_filter is not None and d.content_filter not in self.content_filters:
                raise ValueError(
                    f"deployment {d.name!r} names content_filter {d.content_filter!r}, which is "
                    f"not in content_filters ({', '.join(self.content_filters) or 'none defined'})"
                )
        for consumer in self.consumers:
            try:
                check_consumer(consumer.deployments, consumer.limits_by_deployment,
                               consumer.quotas_by_deployment, consumer.entra is not None, known,
                               self.auth.entra is not None)
            except ConsumerProblem as exc:
                raise ValueError(f"consumer {consumer.name!r} {exc.message}") from None
        owners: dict[str, str] = {}
        admins = set(self.admin.api_keys.values())
        if self.admin.port is not None and self.admin.port == self.server.port:
            raise ValueError("admin.port must differ from server.port (or be left out to serve "
                             "the admin API on the gateway's port)")
        if self.admin.entra is not None and self.auth.entra is None:
            raise ValueError("admin.entra needs auth.entra (the tenants and audiences tokens are "
                             "checked against)")
        for consumer in self.consumers:
            if admins.intersection(consumer.api_keys):
                raise ValueError(f"consumer {consumer.name!r} holds an admin key: an admin "
                                 "credential is never a consumer's")
            for digest in consumer.api_keys:
                if digest in owners and owners[digest] != consumer.name:
                    raise ValueError(
                        f"one API key digest is given to both {owners[digest]!r} "
                        f"and {consumer.name!r}"
                    )
                owners[digest] = consumer.name
        # With the admin API on, consumers may all be made at runtime.
        admin = bool(self.admin.api_keys) or self.admin.entra is not None
        if (not self.consumers and not admin and not self.auth.allow_anonymous
                and self.auth.entra is None):
            raise ValueError(
                "no consumers and no auth.entra are configured, so no caller could be "
                "authenticated: add `consumers` (or enable the admin API to make them), or set "
                "`auth: {allow_anonymous: true}` for a sidecar on 127.0.0.1"
            )
        if self.auth.entra is not None and not admin and not any(c.entra for c in self.consumers):
            raise ValueError(
                "auth.entra is set but no consumer has an `entra` block: every valid token "
                "would be refused; map object ids, app ids, groups or roles to consumers"
            )
        if self.auth.allow_anonymous and not _is_loopback(self.server.host):
            raise ValueError(
                f"auth.allow_anonymous is only allowed when server.host is a loopback address "
                f"(a sidecar), not {self.server.host!r}"
            )
        return self


# The top-level keys that hold mappings (or lists of them): an override may name a key below.
_MAPPINGS = frozenset(name for name, f in GatewayConfig.model_fields.items()
                      if f.annotation not in (str, int, float, bool))
