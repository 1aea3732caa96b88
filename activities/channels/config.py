"""Channel settings: which channels reach which role, and each recipient's addresses.

Read from a YAML file named by ``CZ_CHANNELS_FILE`` (see ``deploy/channels.example.yaml``).
No file means inbox only. Secrets may be written as ``env:NAME`` so the file itself can be
committed to a deployment repository without them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

from activities.tables.delivery import ADDRESS_MAX_CHARS
from domain.organisation import DEFAULT_COUNTY, Role

#: The environment variable naming the channels file.
CHANNELS_FILE_ENV = "CZ_CHANNELS_FILE"

#: Channel names known to :func:`activities.channels.build_channels`.
EMAIL, WECOM, DINGTALK = "email", "wecom", "dingtalk"
KNOWN_CHANNELS: frozenset[str] = frozenset({EMAIL, WECOM, DINGTALK})
ROBOT_CHANNELS: frozenset[str] = frozenset({WECOM, DINGTALK})
#: A robot request's timeout (connect, read, write, a pooled connection): robots have no
#: setting of their own.
ROBOT_TIMEOUT_SECONDS = 10.0
#: How many times the longest channel timeout a delivery's lease must be at least: a mail is
#: a connect and several commands, each under the timeout.
LEASE_OVER_TIMEOUT = 3


def _secret_from_env(value: Any) -> Any:
    """Resolve ``env:NAME`` to the value of environment variable ``NAME``.

    Lets operators keep passwords and robot secrets out of the YAML file (and out of git).
    """
    if isinstance(value, str) and value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in os.environ:
            raise ValueError(f"环境变量 {name} 未设置（渠道配置引用了它）")
        return os.environ[name]
    return value


Secret = Annotated[SecretStr, BeforeValidator(_secret_from_env)]

_STRICT = ConfigDict(frozen=True, extra="forbid")


class SmtpSettings(BaseModel):
    """An SMTP relay: where to connect, how to secure and authenticate, whom mail is from."""

    model_config = _STRICT

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    #: ``starttls``: plain connection upgraded with STARTTLS (usually port 587);
    #: ``ssl``: TLS from the first byte (usually 465); ``none``: only for a local relay.
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    from_address: str
    from_name: str = "县委创先争优活动领导小组办公室"
    timeout_seconds: float = Field(default=10.0, gt=0)


class Robot(BaseModel):
    """A group robot (群机器人) of WeCom or DingTalk, referred to by name in addresses.

    Addresses name robots instead of holding URLs so the access tokens in the URLs never reach
    the delivery table or the logs.
    """

    model_config = _STRICT

    kind: Literal["wecom", "dingtalk"]
    url: str = Field(pattern=r"^https?://")
    #: DingTalk's 加签 secret (``SEC...``); when set, every request carries timestamp and sign.
    secret: Secret | None = None

    @model_validator(mode="after")
    def _secret_only_for_dingtalk(self) -> Robot:
        """WeCom robots have no signing; a secret there is a configuration mistake."""
        if self.secret is not None and self.kind != DINGTALK:
            raise ValueError("只有钉钉机器人可以配置加签密钥（secret）")
        return self


class RecipientAddresses(BaseModel):
    """One recipient's own addresses, by channel: an e-mail address or a robot's name."""

    model_config = _STRICT

    role: Role
    key: str = Field(min_length=1)
    #: The county the recipient works in. Keys repeat across counties (a township 城关镇, an
    #: instructor's name), so an entry reaches only its own county's messages; the default
    #: is the embedded single county's.
    county: str = Field(default=DEFAULT_COUNTY, min_length=1)
    addresses: dict[str, str]


class ChannelsConfig(BaseModel):
    """Everything the :class:`~activities.channels.base.ChannelRouter` needs to know."""

    model_config = _STRICT

    #: Overrides ``Settings.public_base_url`` for links in messages (e.g. an intranet name).
    public_base_url: str | None = None
    #: The channels each role is reached through, besides the in-app inbox (always used).
    routes: dict[Role, list[str]] = Field(default_factory=dict)
    smtp: SmtpSettings | None = None
    robots: dict[str, Robot] = Field(default_factory=dict)
    #: Addresses shared by everyone of a role (a township group's robot, an office mailbox)
    #: in the default county; other counties' are in ``county_role_addresses``.
    role_addresses: dict[Role, dict[str, str]] = Field(default_factory=dict)
    #: The same per county code, for the counties other than the default one (an office
    #: mailbox is one county's: another county's notices never go there).
    county_role_addresses: dict[str, dict[Role, dict[str, str]]] = Field(default_factory=dict)
    #: Addresses of individual recipients; they win over ``role_addresses``.
    recipients: list[RecipientAddresses] = Field(default_factory=list)
    #: How long a claimed delivery is left to the attempt that claimed it (see
    #: ``activities.channels.deliveries``): after it, a worker that died mid-send is taken
    #: over (mail) or the delivery turns uncertain (robots). Shorter recovers sooner after a
    #: crash; it must stay well above the channels' timeouts, or a slow send still under way
    #: would be taken over.
    delivery_lease_seconds: float = Field(default=60.0, gt=0)

    def longest_timeout(self) -> float:
        """The longest single send any configured channel may take, in seconds."""
        timeouts = [self.smtp.timeout_seconds] if self.smtp is not None else []
        if self.robots:
            timeouts.append(ROBOT_TIMEOUT_SECONDS)
        return max(timeouts, default=0.0)

    @model_validator(mode="after")
    def _check_references(self) -> ChannelsConfig:
        """Refuse at start-up what would otherwise fail on the first escalation."""
        routed = {name for names in self.routes.values() for name in names}
        unknown = routed - KNOWN_CHANNELS
        if unknown:
            raise ValueError(f"未知的渠道：{sorted(unknown)}（可用：{sorted(KNOWN_CHANNELS)}）")
        if EMAIL in routed and self.smtp is None:
            raise ValueError("配置了邮件渠道，但缺少 smtp 设置")
        books: list[Mapping[str, str]] = [*self.role_addresses.values()]
        books += [
            book for shared in self.county_role_addresses.values() for book in shared.values()
        ]
        books += [r.addresses for r in self.recipients]
        for book in books:
            for channel, address in book.items():
                if channel not in KNOWN_CHANNELS:
                    raise ValueError(f"地址中的未知渠道：{channel}")
                if len(address) > ADDRESS_MAX_CHARS:
                    raise ValueError(
                        f"{channel}地址过长（不能超过{ADDRESS_MAX_CHARS}字）：{address[:40]}…"
                    )
                if channel in ROBOT_CHANNELS:
                    robot = self.robots.get(address)
                    if robot is None or robot.kind != channel:
                        raise ValueError(f"未定义的{channel}机器人：{address}")
        floor = LEASE_OVER_TIMEOUT * self.longest_timeout()
        if self.delivery_lease_seconds < floor:
            raise ValueError(
                f"delivery_lease_seconds（{self.delivery_lease_seconds:g}秒）过短：须不少于"
                f"最长发送超时的{LEASE_OVER_TIMEOUT}倍（{floor:g}秒），否则仍在发送的消息会被重复发送"
            )
        return self

    @property
    def delivery_lease(self) -> timedelta:
        """:attr:`delivery_lease_seconds` as a duration."""
        return timedelta(seconds=self.delivery_lease_seconds)

    def channels_for(self, role: Role) -> list[str]:
        """The channels a recipient of ``role`` is reached through (inbox aside)."""
        return list(self.routes.get(role, []))

    def address_of(
        self, role: Role, key: str, channel: str, county: str = DEFAULT_COUNTY
    ) -> str | None:
        """The recipient's own address on ``channel``, else their role's, else None: in
        ``county`` only (the same key in another county is another person)."""
        for recipient in self.recipients:
            if (
                recipient.role is role
                and recipient.key == key
                and recipient.county == county
                and channel in recipient.addresses
            ):
                return recipient.addresses[channel]
        return self.shared_addresses(county).get(role, {}).get(channel)

    def shared_addresses(self, county: str = DEFAULT_COUNTY) -> dict[Role, dict[str, str]]:
        """The addresses shared by everyone of a role in ``county``."""
        if county == DEFAULT_COUNTY:
            return self.role_addresses
        return self.county_role_addresses.get(county, {})


def channels_file_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """The channels file named by ``CZ_CHANNELS_FILE``, or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(CHANNELS_FILE_ENV, "").strip()
    return Path(value) if value else None


def load_channels_config(path: Path) -> ChannelsConfig:
    """Parse and validate a channels YAML file (UTF-8: names and keys are Chinese)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return ChannelsConfig.model_validate(data)
