"""Notification channels: e-mail, WeCom and DingTalk group robots, and the in-app inbox.

``build_notifier`` is what ``worker.py`` calls: the inbox alone when no channels file is
configured (``CZ_CHANNELS_FILE`` unset), else a :class:`ChannelRouter` over the channels
the file configures. Adding a channel is one class implementing :class:`Channel` plus one
line in :func:`build_channels`.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from activities.channels.base import (
    Channel,
    ChannelError,
    ChannelRouter,
    DeliveryFailed,
    RobotPoster,
)
from activities.channels.config import (
    ChannelsConfig,
    channels_file_from_env,
    load_channels_config,
)
from activities.channels.deliveries import (
    Delivery,
    DeliveryStatus,
    deliveries_of,
    failed_deliveries,
)
from activities.channels.dingtalk import DingTalkChannel
from activities.channels.smtp import SmtpChannel
from activities.channels.wecom import WeComChannel
from activities.notifier import InboxNotifier, Notifier
from activities.tables import notice_deliveries
from chuangzheng.settings import Settings

__all__ = [
    "Channel",
    "ChannelError",
    "ChannelRouter",
    "ChannelsConfig",
    "Delivery",
    "DeliveryFailed",
    "DeliveryStatus",
    "DingTalkChannel",
    "RobotPoster",
    "SmtpChannel",
    "WeComChannel",
    "build_channels",
    "build_notifier",
    "deliveries_of",
    "failed_deliveries",
    "load_channels_config",
    "notice_deliveries",
]


def build_channels(config: ChannelsConfig, *, base_url: str) -> list[Channel]:
    """The channels ``config`` sets up (mail needs SMTP settings, robots need robots)."""
    channels: list[Channel] = []
    if config.smtp is not None:
        channels.append(SmtpChannel(config.smtp, base_url=base_url))
    kinds = {robot.kind for robot in config.robots.values()}
    poster = RobotPoster()  # one kept HTTP client for every robot
    if "wecom" in kinds:
        channels.append(WeComChannel(config.robots, base_url=base_url, poster=poster))
    if "dingtalk" in kinds:
        channels.append(DingTalkChannel(config.robots, base_url=base_url, poster=poster))
    return channels


def router_from_config(
    sessions: sessionmaker[Session], config: ChannelsConfig, settings: Settings
) -> ChannelRouter:
    """A router over the channels of ``config``; links use its base URL or the settings'."""
    base_url = config.public_base_url or settings.public_base_url
    return ChannelRouter(sessions, config, build_channels(config, base_url=base_url))


def build_notifier(sessions: sessionmaker[Session], settings: Settings) -> Notifier:
    """The worker's notifier: the inbox, plus the channels of ``CZ_CHANNELS_FILE`` if set.

    The file is read and validated here, at start-up, so a broken configuration stops the
    worker at once instead of failing the first escalation.
    """
    path = channels_file_from_env()
    if path is None:
        return InboxNotifier(sessions)
    return router_from_config(sessions, load_channels_config(path), settings)
