"""Runtime configuration, read from ``CZ_*`` environment variables (and ``.env``).

Settings are never built at import time: call :func:`get_settings` (cached) so tests and CLI
commands can set the environment first, and ``get_settings.cache_clear()`` to re-read it.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Shipped only so development works out of the box; refused outside development.
DEFAULT_SECRET_KEY = "dev-insecure-secret-change-me-not-for-production"


def repo_root() -> Path:
    """Return the repository root (the project is installed editable, so this is the checkout).

    ``plans/`` and the default ``.data/`` directory live here, outside any package.
    """
    return Path(__file__).resolve().parent.parent


class WorkerRole(StrEnum):
    """What a worker process polls for on the task queue (``CZ_WORKER_ROLE``).

    A Python process has one GIL: a worker running the activities of a deadline storm
    (recording events, rendering and delivering notices) also has to run the workflow tasks
    behind every submission (an Update), which then wait their turn. Workflow workers and
    activity workers in separate processes keep workflow tasks off the storm's CPU.
    """

    #: Workflows and activities in one process (the default, one process is enough).
    ALL = "all"
    #: Workflow tasks only (Updates, signals, timers): no activity runs in this process.
    WORKFLOWS = "workflows"
    #: Activities only (the read model, notices, kick-off pages): no workflow task.
    ACTIVITIES = "activities"

    @property
    def runs_workflows(self) -> bool:
        return self is not WorkerRole.ACTIVITIES

    @property
    def runs_activities(self) -> bool:
        return self is not WorkerRole.WORKFLOWS


def parse_worker_roles(value: str) -> tuple[WorkerRole, ...]:
    """``workflows,activities`` → the roles, one per worker process (``CZ_WORKER_ROLES``).

    Empty means "no roles listed". Between them the roles must run workflows and activities
    (``all``, or both ``workflows`` and ``activities``): otherwise nothing would ever run
    one of the two and every round would stall. Raises ValueError naming the bad part.
    """
    parts = [part.strip().lower() for part in value.split(",") if part.strip()]
    roles: list[WorkerRole] = []
    for part in parts:
        try:
            roles.append(WorkerRole(part))
        except ValueError:
            choices = ", ".join(role.value for role in WorkerRole)
            raise ValueError(
                f"CZ_WORKER_ROLES: unknown role {part!r} (one of {choices}, comma-separated)"
            ) from None
    if roles and not (
        any(role.runs_workflows for role in roles) and any(role.runs_activities for role in roles)
    ):
        raise ValueError(
            "CZ_WORKER_ROLES must run both workflows and activities: list 'all', or both "
            f"'workflows' and 'activities' (got {value!r})"
        )
    return tuple(roles)


class Settings(BaseSettings):
    """All configuration of the service, worker and CLI."""

    model_config = SettingsConfigDict(
        env_prefix="CZ_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Allow ``Settings(database_url=...)`` in code and tests despite the alias below.
        populate_by_name=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    # The argon2id parameters of password and activation-code hashes: "fast" is for test
    # suites only (chuangzheng.services.password_hashing reads the same variable, since
    # hashes are made where no settings are at hand) and is refused in production.
    password_hashing: Literal["standard", "fast"] = "standard"
    data_dir: Path = Field(default_factory=lambda: repo_root() / ".data")
    # Empty means "SQLite file under data_dir"; filled in by the validator below because the
    # default depends on another field. DATABASE_URL (no prefix) is the conventional name
    # hosting platforms set, so it is accepted too.
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("CZ_DATABASE_URL", "DATABASE_URL", "database_url"),
    )
    # ----- the Temporal connection (docs/production.md, "Settings") -----
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "chuangzheng"
    # TLS to the frontend: on when any TLS setting or an API key is given, or when
    # CZ_TEMPORAL_TLS=true (server-authenticated TLS with the system's CAs). Mutual TLS: a
    # client certificate and its key (PEM files, both or neither); CA: a PEM bundle to trust
    # instead of the system's; server name: the name to verify when the address is an IP or
    # a load balancer's name.
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str = ""
    # Temporal Cloud's API key (instead of a client certificate); implies TLS.
    temporal_api_key: str = Field(default="", repr=False)
    # The Temporal UI's origin (scheme://host[:port]) allowed to call the codec endpoint
    # (/codec/decode, /codec/encode) from the browser, with the sign-in cookie. Empty: no
    # cross-origin caller.
    temporal_ui_origin: str = ""
    # ----- encrypted payloads (chuangzheng.payload_codec) -----
    # Unset: on in production, off otherwise. On: every payload is encrypted with the first
    # key of CZ_PAYLOAD_KEYS ("id1:base64key,id2:base64key"); all listed keys decrypt.
    payload_encryption: bool | None = None
    payload_keys: str = Field(default="", repr=False)
    # ----- files (chuangzheng.upload_storage) -----
    # Where evidence uploads (content-addressed by sha256) are stored: "directory" (below) or
    # "s3", a bucket of an S3-compatible store that several API replicas share.
    upload_storage: Literal["directory", "s3"] = "directory"
    # The directory. Unset: <CZ_DATA_DIR>/uploads. Several API replicas must share it (a
    # ReadWriteMany volume), or use s3.
    upload_dir: Path | None = None
    # The bucket (it must exist; the service never creates buckets), the endpoint of a store
    # other than AWS (e.g. http://minio:9000; empty: AWS for the region), the region, a key
    # prefix inside the bucket, and the addressing style ("path" for MinIO and most
    # self-hosted stores, "virtual" for stores that require bucket.host names).
    upload_s3_bucket: str = ""
    upload_s3_endpoint: str = ""
    upload_s3_region: str = ""
    upload_s3_prefix: str = "uploads/"
    upload_s3_addressing_style: Literal["path", "virtual", "auto"] = "path"
    # Credentials (secrets; both or neither). Neither: boto3's own chain (AWS_* variables, a
    # Kubernetes service account's web identity, an instance role).
    upload_s3_access_key_id: str = Field(default="", repr=False)
    upload_s3_secret_access_key: str = Field(default="", repr=False)
    temporal_ui_port: int = 8233
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # repr=False keeps the key out of logged or printed settings.
    secret_key: str = Field(default=DEFAULT_SECRET_KEY, repr=False)
    public_base_url: str = "http://127.0.0.1:8000"
    # When the daily digest and the weekly circular go out, Asia/Shanghai (ISO weekday).
    digest_time: str = Field(default="08:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    circular_weekday: int = Field(default=1, ge=1, le=7)
    circular_time: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"
    # ----- metrics and traces (chuangzheng.telemetry; docs/production.md) -----
    # host:port where a worker process serves its Prometheus metrics (the Temporal SDK's and
    # the project's). Empty: none. Each worker process on one host needs its own port.
    metrics_address: str = ""
    # Bearer token a scraper presents for the API's /metrics. Empty: no /metrics (404).
    metrics_token: str = Field(default="", repr=False)
    # OTLP/HTTP traces endpoint of an OpenTelemetry collector, e.g.
    # http://otel-collector:4318/v1/traces. Empty: no traces exported.
    otlp_endpoint: str = ""
    # ----- processes and the worker's capacity (README "What `make run` starts") -----
    # Worker processes `make run` starts (CZ_WORKERS); each polls the same task queue.
    workers: int = Field(default=1, ge=1, le=32)
    # What `make run`'s worker processes poll for, one role per process, comma-separated
    # (CZ_WORKER_ROLES, e.g. "workflows,activities"; see WorkerRole). Empty: CZ_WORKERS
    # processes that each run both. When set, it decides the processes and CZ_WORKERS, if
    # set too, must equal the number of roles listed.
    worker_roles: str = ""
    # What this worker process polls for (CZ_WORKER_ROLE; `chuangzheng worker --role`).
    worker_role: WorkerRole = WorkerRole.ALL
    # Per worker process. Activities share the read model's connection pool.
    worker_max_concurrent_activities: int = Field(default=50, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    # Workflows kept in memory between tasks (sticky cache; the SDK default is 1,000). One
    # per organisation of a running round plus rounds and evaluations: below that, every
    # deadline replays evicted histories from the start. About 0.2 MB each (measured on the
    # demo round), so the default holds a 2,500-organisation county in about 600 MB.
    worker_max_cached_workflows: int = Field(default=3_000, ge=0)
    # On SIGTERM: the worker stops polling and running activities get this long to finish;
    # the API stops accepting and in-flight requests get this long to answer. `make run`
    # kills what still runs 1.5 s later (at most 6.5 s after the signal).
    worker_graceful_shutdown_seconds: float = Field(default=4.0, ge=0, le=60)
    api_graceful_shutdown_seconds: float = Field(default=4.0, ge=0, le=60)
    # `make run`: its one-line status on the console, and the demo county's roster.
    run_status_interval_seconds: float = Field(default=60.0, gt=0)
    demo_roster: Path | None = None
    # ----- the read model's connection pool (PostgreSQL; SQLite ignores both) -----
    # Per process. Unset: derived from worker_max_concurrent_activities (a fifth of the
    # activity slots, at least 5: 10 for 50) and as many again in overflow. Activities hold a
    # connection only while a statement runs and record_events writes in groups, so a few
    # connections serve many slots; 20 per process keep two workers and the API well under
    # PostgreSQL's default max_connections (100).
    database_pool_size: int | None = Field(default=None, ge=1)
    database_max_overflow: int | None = Field(default=None, ge=0)
    # ----- sign-in (chuangzheng.services.sign_in) -----
    # A token lives this long; clients renew it (POST /api/v1/auth/renew, the pages' cookie
    # on use) up to the session's absolute maximum, then sign in again.
    session_token_minutes: float = Field(default=30, gt=0, le=24 * 60)
    session_max_hours: float = Field(default=12, gt=0, le=24 * 31)
    # Failed sign-ins (only failures count): this many for one account, or from one
    # address, within the window block further attempts (429 with Retry-After) for
    # signin_block_seconds, doubling while failures go on, up to the maximum. The address
    # threshold is higher: an office behind one NAT shares an address.
    signin_account_failures: int = Field(default=5, ge=1)
    signin_address_failures: int = Field(default=20, ge=1)
    signin_window_minutes: float = Field(default=15, gt=0)
    signin_block_seconds: float = Field(default=30, gt=0)
    signin_max_block_seconds: float = Field(default=3600, gt=0)
    # ----- Idempotency-Key: how long a stored answer is replayed (then swept away) -----
    # A week: far beyond any client's retries, short enough that the table (one row per
    # keyed write, an organisation's status each) stays small. The API sweeps hourly.
    idempotency_retention_hours: float = Field(default=168, gt=0)
    # ----- OpenID Connect single sign-on (off while the issuer is empty) -----
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = Field(default="", repr=False)
    # The ID token claim that names the local account (its username).
    oidc_username_claim: str = "preferred_username"
    oidc_scopes: str = "openid profile"

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        """Fill the default database URL and refuse insecure production configuration."""
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'chuangzheng.db'}"
        roles = parse_worker_roles(self.worker_roles)
        if roles:
            if "workers" in self.model_fields_set and self.workers != len(roles):
                raise ValueError(
                    f"CZ_WORKERS={self.workers} but CZ_WORKER_ROLES lists {len(roles)} "
                    "worker processes; set one of them, or make them agree"
                )
            self.workers = len(roles)
        if self.database_pool_size is None:
            self.database_pool_size = max(5, self.worker_max_concurrent_activities // 5)
        if self.database_max_overflow is None:
            self.database_max_overflow = self.database_pool_size
        if self.environment != "development" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "CZ_SECRET_KEY must be set to a private random value when "
                f"CZ_ENVIRONMENT={self.environment} (the built-in development key is public)."
            )
        if self.environment == "production" and self.password_hashing != "standard":
            raise ValueError(
                "CZ_PASSWORD_HASHING=fast is for test suites: production hashes passwords "
                "with the standard argon2id parameters."
            )
        if self.environment == "production":
            problem = weak_secret_key(self.secret_key)
            if problem:
                raise ValueError(
                    f"CZ_SECRET_KEY is too weak for production: {problem}. Generate one with "
                    '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.'
                )
        if self.signin_max_block_seconds < self.signin_block_seconds:
            raise ValueError(
                "CZ_SIGNIN_MAX_BLOCK_SECONDS must not be below CZ_SIGNIN_BLOCK_SECONDS"
            )
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("CZ_OIDC_CLIENT_ID must be set when CZ_OIDC_ISSUER is")
        self._check_temporal_connection()
        self._check_payload_encryption()
        self._check_upload_storage()
        return self

    def _check_upload_storage(self) -> None:
        if self.upload_storage != "s3":
            return
        if not self.upload_s3_bucket:
            raise ValueError("CZ_UPLOAD_S3_BUCKET must be set when CZ_UPLOAD_STORAGE=s3")
        if bool(self.upload_s3_access_key_id) != bool(self.upload_s3_secret_access_key):
            raise ValueError(
                "CZ_UPLOAD_S3_ACCESS_KEY_ID and CZ_UPLOAD_S3_SECRET_ACCESS_KEY go together "
                "(both, or neither for boto3's own credential chain)"
            )
        if self.upload_s3_endpoint:
            endpoint = urlsplit(self.upload_s3_endpoint)
            if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
                raise ValueError(
                    "CZ_UPLOAD_S3_ENDPOINT must be a URL such as http://minio:9000 "
                    f"(got {self.upload_s3_endpoint!r})"
                )
        # Keys are <prefix>ab/abcdef…: a prefix names a folder, so it ends with one slash.
        prefix = self.upload_s3_prefix.strip("/")
        self.upload_s3_prefix = f"{prefix}/" if prefix else ""

    def _check_temporal_connection(self) -> None:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "CZ_TEMPORAL_TLS_CERT and CZ_TEMPORAL_TLS_KEY go together (mutual TLS needs "
                "the client certificate and its private key)"
            )
        if self.temporal_api_key and self.temporal_tls_cert is not None:
            raise ValueError(
                "set either CZ_TEMPORAL_API_KEY or a client certificate "
                "(CZ_TEMPORAL_TLS_CERT/CZ_TEMPORAL_TLS_KEY), not both"
            )
        if self.temporal_ui_origin:
            origin = urlsplit(self.temporal_ui_origin)
            if (
                origin.scheme not in ("http", "https")
                or not origin.netloc
                or origin.path not in ("", "/")
                or origin.query
                or origin.fragment
            ):
                raise ValueError(
                    "CZ_TEMPORAL_UI_ORIGIN must be an origin such as "
                    f"https://temporal.example.org (got {self.temporal_ui_origin!r})"
                )
            self.temporal_ui_origin = f"{origin.scheme}://{origin.netloc}"

    def _check_payload_encryption(self) -> None:
        # Imported here: the codec module pulls in cryptography and the Temporal protos.
        from chuangzheng.payload_codec import parse_payload_keys

        keys = parse_payload_keys(self.payload_keys)  # format checked even when off
        if self.payload_encryption_enabled and not keys:
            why = (
                "CZ_ENVIRONMENT=production turns it on"
                if self.payload_encryption is None
                else "CZ_PAYLOAD_ENCRYPTION=true"
            )
            raise ValueError(
                f"payload encryption is on ({why}) but CZ_PAYLOAD_KEYS is empty: set it to "
                "'id:base64key' (a 32-byte key: `python -c \"import base64, os; "
                'print(base64.b64encode(os.urandom(32)).decode())"`)'
            )

    @property
    def worker_process_roles(self) -> tuple[WorkerRole, ...]:
        """The role of each worker process `make run` starts, in order."""
        return parse_worker_roles(self.worker_roles) or (WorkerRole.ALL,) * self.workers

    @property
    def temporal_tls_enabled(self) -> bool:
        """The connection to Temporal uses TLS."""
        return bool(
            self.temporal_tls
            or self.temporal_tls_cert
            or self.temporal_tls_ca
            or self.temporal_tls_server_name
            or self.temporal_api_key
        )

    @property
    def payload_encryption_enabled(self) -> bool:
        """Payloads are encrypted: as CZ_PAYLOAD_ENCRYPTION says, else in production."""
        if self.payload_encryption is not None:
            return self.payload_encryption
        return self.environment == "production"

    @property
    def upload_directory(self) -> Path:
        """Where evidence uploads are stored (``CZ_UPLOAD_DIR``, else under the data dir)."""
        return self.upload_dir if self.upload_dir is not None else self.data_dir / "uploads"

    @property
    def oidc_enabled(self) -> bool:
        """Single sign-on is offered (an issuer is configured)."""
        return bool(self.oidc_issuer)


#: Fewest characters of a production secret key: 32 random bytes' worth of text.
MIN_SECRET_KEY_LENGTH = 32
#: Fewest distinct characters: a key of one or two characters repeated is not random.
MIN_SECRET_KEY_DISTINCT = 8

#: ``CZ_*`` names read outside :class:`Settings`: the admin CLI's account (``chuangzheng
#: admin``), the channels file (``activities.channels.config``) and the secrets the example
#: channels file names, and the test suite's and benchmarks' switches.
OTHER_KNOWN_VARIABLES = frozenset(
    {
        "CZ_API_URL",
        "CZ_API_USER",
        "CZ_API_PASSWORD",
        "CZ_CHANNELS_FILE",
        "CZ_SMTP_PASSWORD",
        "CZ_DINGTALK_SECRET",
        "CZ_RECORD_HISTORIES",
        "CZ_TEST_SMTP_PASSWORD",
        "CZ_BENCH_POSTGRES_URL",
    }
)


def weak_secret_key(key: str) -> str | None:
    """Why ``key`` is not fit to sign production tokens, or None when it is."""
    if key == DEFAULT_SECRET_KEY:
        return "it is the public development key"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"it has {len(key)} characters, at least {MIN_SECRET_KEY_LENGTH} are required"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"it repeats fewer than {MIN_SECRET_KEY_DISTINCT} distinct characters"
    return None


def known_variables(environ: Mapping[str, str]) -> frozenset[str]:
    """Every ``CZ_*`` name the service reads: the settings' fields and aliases, the names in
    :data:`OTHER_KNOWN_VARIABLES`, and the ``env:CZ_*`` secrets the channels file names."""
    names = {f"CZ_{name.upper()}" for name in Settings.model_fields}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str) and c.startswith("CZ_")}
    names |= OTHER_KNOWN_VARIABLES
    channels = environ.get("CZ_CHANNELS_FILE")
    if channels:
        try:
            text = Path(channels).read_text("utf-8")
        except OSError:
            text = ""  # the notifier reports an unreadable file itself, at start-up
        names |= set(re.findall(r"env:(CZ_[A-Z0-9_]+)", text))
    return frozenset(names)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``CZ_*`` variables of ``environ`` that nothing reads (a typo such as ``CZ_ENV``
    would otherwise be ignored silently), sorted."""
    known = known_variables(environ)
    return sorted(name for name in environ if name.startswith("CZ_") and name not in known)


class UnknownVariablesError(ValueError):
    """Production refuses to start on a ``CZ_*`` variable no setting reads (the entry points
    print it as a configuration refusal, ``chuangzheng.bootstrap.as_refusal``)."""


def check_environment(settings: Settings, environ: Mapping[str, str]) -> None:
    """Report unknown ``CZ_*`` variables: refuse to start in production
    (:class:`UnknownVariablesError`), warn (``UnknownVariableWarning``) otherwise."""
    unknown = unknown_variables(environ)
    if not unknown:
        return
    message = (
        f"unknown environment variable(s) {', '.join(unknown)}: no setting of this name "
        "(misspelt? see README, Settings)"
    )
    if settings.environment == "production":
        raise UnknownVariablesError(message)
    warnings.warn(message, UnknownVariableWarning, stacklevel=3)


class UnknownVariableWarning(UserWarning):
    """A ``CZ_*`` environment variable that no setting reads."""


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first call; unknown
    ``CZ_*`` variables are reported (:func:`check_environment`)."""
    settings = Settings()
    check_environment(settings, os.environ)
    return settings
