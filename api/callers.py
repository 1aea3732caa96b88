"""An account as the services see it: :class:`chuangzheng.services.callers.Caller` built
from the signed-in user, with the scope rule of :mod:`api.scope` (the one rule for every
route and page)."""

from __future__ import annotations

from fastapi import Request

from api.auth import User
from api.deps import client_ip
from api.scope import covers, scope_condition
from chuangzheng.services.callers import Caller
from domain.state import Actor


def service_caller(user: User, request: Request | None = None) -> Caller:
    """``user`` acting through ``request`` (its address is what the audit log records)."""
    ip = client_ip(request) if request is not None else None
    return Caller(
        actor=Actor(user=user.username, name=user.display_name, role=user.role, ip=ip),
        covers=lambda org: covers(user, org),
        condition=scope_condition(user),
        county=user.county,
        counties=user.counties,
    )
