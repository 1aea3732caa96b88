"""Who calls a use case: the actor a change is recorded under, the role it acts in and the
organisations its scope covers, and the checks and audit rows every use case makes with it.

The scope rule itself belongs to the entry point that knows the account (``api.scope`` for
the API and the pages): a :class:`Caller` carries it both as a test on one organisation
(``covers``) and as a condition on ``organisations`` for lists (``condition``), so a service
filters lists and checks single objects by the same rule without importing ``api``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from activities.roster_store import load_organisation
from activities.tables import AuditRow, RoundRow, UserRow
from chuangzheng.services.errors import NotFound, Refused
from domain.organisation import DEFAULT_COUNTY, Organisation, Role
from domain.state import Actor

#: The message of a role refusal (the API's 403).
FORBIDDEN = "当前角色无权执行此操作"


@dataclass(frozen=True)
class Caller:
    """The actor (account, display name, role, address), the organisations the account's
    scope covers (``covers``) and the same rule as a SQL condition on ``organisations``;
    the county the account works in (what it creates, creates there) and the counties it
    may see (its own, or a city or province office's supervised ones)."""

    actor: Actor
    covers: Callable[[Organisation], bool]
    condition: ColumnElement[bool]
    county: str = DEFAULT_COUNTY
    counties: frozenset[str] = frozenset({DEFAULT_COUNTY})

    @property
    def username(self) -> str:
        """The account's name (what rows record as who did it)."""
        return self.actor.user

    @property
    def role(self) -> Role:
        """The role the account acts in."""
        return self.actor.role


class Scoped(Protocol):
    """Anything that says which organisations it covers (a :class:`Caller`, or the
    organisation actions' caller, which needs no SQL condition)."""

    @property
    def covers(self) -> Callable[[Organisation], bool]:
        """Whether the organisation is in scope."""
        ...


def account_county(session: Session, username: str) -> str:
    """The county ``username``'s account works in; the default county for an actor with no
    account row (the demo loader, a script), as a single-county deployment has it."""
    county = session.scalar(select(UserRow.county).where(UserRow.username == username))
    return county or DEFAULT_COUNTY


def visible_organisation(session: Session, caller: Scoped, org_id: str) -> Organisation:
    """The organisation if it exists and ``caller`` covers it; :class:`NotFound` otherwise
    (the same answer for both, so nothing outside the scope leaks)."""
    org = load_organisation(session, org_id)
    if org is None or not caller.covers(org):
        raise NotFound()
    return org


def visible_round(
    session: Session, caller: Caller, round_id: str, message: str = "轮次不存在"
) -> RoundRow:
    """The round if it exists and is of one of ``caller``'s counties; :class:`NotFound`
    (``message``) otherwise, the same answer for both (many counties on one deployment: a
    round belongs to its county, as ``api.tenancy`` checks it on the routes). Every use case
    that acts on a round the caller names checks it here, whichever door the id came in by
    (a path, a query, a form's body)."""
    row = session.get(RoundRow, round_id) if round_id else None
    if row is None or row.county not in caller.counties:
        raise NotFound(message)
    return row


def require_role(caller: Caller, roles: Collection[Role], message: str = FORBIDDEN) -> None:
    """:class:`Refused` (``forbidden``) unless ``caller`` acts in one of ``roles``."""
    if caller.role not in roles:
        raise Refused("forbidden", message)


def audit_row(
    caller: Caller,
    action: str,
    *,
    round_id: str | None,
    org_id: str | None,
    detail: dict[str, Any],
    now: datetime | None = None,
) -> AuditRow:
    """The audit row of one change ``caller`` made, to be added in the change's own
    transaction (so a change and its record commit together, or neither does). Its id is
    fresh: a retried request that is answered from its stored answer writes nothing again."""
    return AuditRow(
        audit_id=f"{action}/{uuid.uuid4().hex}",
        user=caller.username,
        role=caller.role.value,
        action=action,
        round_id=round_id,
        org_id=org_id,
        ip=caller.actor.ip,
        at=now or datetime.now(UTC),
        detail=detail,
    )
