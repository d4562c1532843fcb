"""One settings object, read from the environment and validated at start-up.

A process builds it once (`main.py` and `ots-admin` with `load_settings`) and passes it in:
`api.app.create_app(settings)` hands it to everything the application needs it for.
"""

import ipaddress
import json
from typing import Annotated, Literal, Self

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.webhooks.policy import DestinationPolicy
from api.webhooks.signing import secret_bytes

OWASP_ARGON2_MEMORY_KIB = 19_456


class Settings(BaseSettings):
    """Every knob of the service; each field is read from the upper-case environment variable."""

    model_config = SettingsConfigDict(env_file=None, case_sensitive=False, extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./secrets.db"
    # `production` turns off what only a developer needs (GraphiQL, introspection, /docs,
    # /redoc and /openapi.json) unless set explicitly, and puts /metrics behind METRICS_TOKEN.
    profile: Literal["development", "production"] = "development"

    default_ttl_seconds: int = Field(default=604_800, ge=1)
    min_ttl_seconds: int = Field(default=60, ge=1)
    max_ttl_seconds: int = Field(default=2_592_000, ge=1)

    max_secret_bytes: int = Field(default=65_536, ge=1)
    max_passphrase_length: int = Field(default=1024, ge=1)
    max_failed_attempts: int = Field(default=5, ge=1)
    # How long a receipt outlives its secret's expiry before the purge removes it.
    receipt_retention_seconds: int = Field(default=604_800, ge=0)

    # `token`: creating needs `Authorization: Bearer <token>` from `ots-admin tokens create`.
    create_auth: Literal["open", "token"] = "open"
    # The storage quota, over ciphertext bytes and stored secrets (expired ones count until
    # the purge deletes them). A create that would pass either is refused: 507.
    max_stored_bytes: int = Field(default=1 << 30, ge=1)
    max_live_secrets: int = Field(default=1_000_000, ge=1)

    purge_interval_seconds: float = Field(default=60, gt=0)
    purge_batch_size: int = Field(default=1000, ge=1)
    # A breath between batches keeps a large purge from crowding out reveals.
    purge_pause_seconds: float = Field(default=0.02, ge=0)

    argon2_memory_kib: int = Field(default=OWASP_ARGON2_MEMORY_KIB, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    hash_workers: int | None = Field(default=None, ge=1)
    # Hashing that cannot start within this is refused at once (503); `inf` never refuses.
    hash_queue_timeout_seconds: float = Field(default=1.0, gt=0)
    # Argon2 below the OWASP minimum is only for tests and benchmarks, and must be asked for.
    allow_weak_argon2: bool = False

    # The pages for people (`/`, `/s/…`, `/r/…`); false leaves an API-only deployment.
    web_ui: bool = True
    graphiql: bool = True
    graphiql_assets_url: str | None = None
    graphql_introspection: bool = True
    graphql_max_depth: int = Field(default=10, ge=0)
    graphql_max_aliases: int = Field(default=15, ge=1)
    graphql_max_tokens: int = Field(default=1000, ge=1)
    # /docs, /redoc and /openapi.json: the REST API's description, as introspection is
    # GraphQL's (off by default in production, like it).
    api_docs: bool = True
    auto_migrate: bool = True

    max_request_bytes: int | None = Field(default=None, ge=1024)
    # Header fields past either bound get 431. Node.js allows 16 KiB of headers; Apache 100
    # fields. A request of this API needs a handful, a browser with cookies a few KiB.
    max_request_headers: int = Field(default=100, ge=10)
    max_request_header_bytes: int = Field(default=16_384, ge=1024)

    rate_limit_create: str = "60/minute"
    rate_limit_reveal: str = "60/minute"
    rate_limit_receipt: str = "60/minute"
    # In token mode creates are counted per token: its own `--rate`, else this.
    rate_limit_create_per_token: str = "600/minute"  # noqa: S105  (a limit)
    rate_limit_storage_url: str = "memory://"
    # How long a shared counter may take before this process counts locally instead.
    rate_limit_storage_timeout_seconds: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    rate_limit_key_prefix: str = "ots"
    # Comma-separated addresses or CIDR ranges, e.g. `10.0.0.1,172.16.0.0/12` (JSON works too).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    metrics: bool = True
    # When set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_token: SecretStr | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Notifications: a sender may ask (`notify_url`) to be told when its receipt closes.
    # Host names that may be notified, exact or `*.example.com` (its subdomains); empty
    # switches notifications off, and a create that asks for one is refused.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Plain `http://` receivers, and receivers at loopback, private, link-local or metadata
    # addresses: for tests and closed networks only.
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    # `whsec_` + base64: signs notifications, and derives each creator token's own secret.
    webhook_signing_secret: SecretStr | None = None
    # Retries back off from the base (doubling, jittered, at most an hour apart) until the
    # window closes; then the notification is `failed`.
    webhook_retry_hours: float = Field(default=24, gt=0, le=24 * 365, allow_inf_nan=False)
    webhook_retry_base_seconds: float = Field(default=10, gt=0, allow_inf_nan=False)
    webhook_timeout_seconds: float = Field(default=5, gt=0, le=60)
    # How often each process looks for notifications due (it also looks at once after
    # closing a receipt that asked for one).
    webhook_poll_seconds: float = Field(default=5, gt=0, allow_inf_nan=False)

    db_pool_size: int = Field(default=10, ge=1)
    db_pool_timeout_seconds: float = Field(default=5, gt=0)

    @field_validator(
        "rate_limit_create",
        "rate_limit_reveal",
        "rate_limit_receipt",
        "rate_limit_create_per_token",
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError("expected a limit like 60/minute, or 5/second;60/hour") from None
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _rate_limit_storage_is_known(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must start with memory://, redis:// or rediss://")
        return value

    @field_validator("trusted_proxies", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        # `a,b c` or a JSON list, as an environment variable holds a list.
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _webhook_hosts_are_names(cls, value: list[str]) -> list[str]:
        try:  # the rule the deliveries apply, so an entry cannot pass here and fail there
            allowed = DestinationPolicy(allowed_hosts=frozenset(value)).allowed_hosts
        except ValueError:
            raise ValueError(
                "each entry is a host name, `*.` and a domain, or an IP address"
            ) from None
        return sorted(allowed)

    @field_validator("webhook_signing_secret")
    @classmethod
    def _signing_secret_is_standard(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:  # the signer's own rule, so a secret cannot pass here and fail at signing
            secret_bytes(value.get_secret_value())
        except ValueError:
            raise ValueError(
                "expected `whsec_` and the base64 of 24 to 64 random bytes "
                "(`ots-admin webhooks new-secret` makes one)"
            ) from None
        return value

    @model_validator(mode="after")
    def _notifications_are_signed(self) -> Self:
        if self.webhook_allowed_hosts and self.webhook_signing_secret is None:
            raise ValueError("WEBHOOK_ALLOWED_HOSTS needs WEBHOOK_SIGNING_SECRET")
        return self

    @model_validator(mode="after")
    def _ttl_bounds_are_ordered(self) -> Self:
        if not self.min_ttl_seconds <= self.default_ttl_seconds <= self.max_ttl_seconds:
            raise ValueError(
                "MIN_TTL_SECONDS <= DEFAULT_TTL_SECONDS <= MAX_TTL_SECONDS must hold, got "
                f"{self.min_ttl_seconds} / {self.default_ttl_seconds} / {self.max_ttl_seconds}"
            )
        return self

    @model_validator(mode="after")
    def _argon2_is_strong_enough(self) -> Self:
        weak = self.argon2_memory_kib < OWASP_ARGON2_MEMORY_KIB or self.argon2_time_cost < 2
        if weak and not self.allow_weak_argon2:
            raise ValueError(
                f"ARGON2_MEMORY_KIB below {OWASP_ARGON2_MEMORY_KIB} or ARGON2_TIME_COST below 2 "
                "is weaker than OWASP's minimum; set ALLOW_WEAK_ARGON2=true for tests only"
            )
        return self

    @model_validator(mode="after")
    def _database_url_is_async(self) -> Self:
        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return self

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_is_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # `METRICS_TOKEN=` is a template that found no value, not a choice: /metrics would
        # answer anyone who sends `Authorization: Bearer `.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "must not be empty: set a token, or unset it (outside PROFILE=production, "
                "/metrics is then open)"
            )
        return value

    @model_validator(mode="after")
    def _production_exposes_only_the_api(self) -> Self:
        if self.profile != "production":
            return self
        for name in ("graphiql", "graphql_introspection", "api_docs"):
            if name not in self.model_fields_set:
                setattr(self, name, False)
        if self.metrics and self.metrics_token is None:
            raise ValueError(
                "PROFILE=production needs METRICS_TOKEN for /metrics (or METRICS=false)"
            )
        return self

    @property
    def request_body_limit(self) -> int:
        """The largest request body accepted: the secret limit plus room for the envelope."""
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        # JSON escapes can grow a secret up to six-fold (\u0000); allow that plus the rest.
        return self.max_secret_bytes * 6 + self.max_passphrase_length * 6 + 4096

    @property
    def notifications_on(self) -> bool:
        """Whether a create may ask to be notified (some host is allowed)."""
        return bool(self.webhook_allowed_hosts)

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")


class InvalidSettings(RuntimeError):
    """Raised at start-up when an environment variable holds an unusable value."""


def load_settings() -> Settings:
    """Read the settings, turning a validation error into one naming the variables."""
    try:
        return Settings()
    except ValidationError as exc:
        # Name the variable and the rule, never the value: it may carry a password.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise InvalidSettings(f"invalid configuration: {problems}") from None
