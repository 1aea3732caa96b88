"""联系点 (seed 002 §六(一)): a leading cadre (党员领导干部) sets up contact points among the
grassroots organisations of the field they are in charge of, "抓点带面，指导工作".

The county office links a cadre (by the key their account's scope names, role
``leading_cadre``) to the organisations of a contact point. The cadre then sees those
organisations' pages and status (read only: the workflow lets no action through for the
role) and gets their daily digest. The account itself is made through the ordinary account
machinery (role ``leading_cadre``, scope key the cadre's key).

The organisations a cadre covers are read when their token is checked
(:func:`contact_organisations`), so a change to a contact point takes effect at once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from activities.tables import ContactPointOrgRow, ContactPointRow, OrganisationRow
from chuangzheng.services.callers import Caller, audit_row, require_role
from chuangzheng.services.errors import InvalidInput, NotFound
from chuangzheng.services.field_errors import invalid_input
from domain.organisation import Role
from domain.text import Visible

#: Only the county office links cadres to organisations.
MANAGERS = frozenset({Role.COUNTY_OFFICE})
#: Who reads the list: the county office (all) and a cadre (their own).
READERS = frozenset({Role.COUNTY_OFFICE, Role.LEADING_CADRE})
FORBIDDEN = "只有县委活动办可以设置联系点"


class ContactPointRequest(BaseModel):
    """A contact point: the cadre (their account's scope key and name), their capacity, and
    the organisations linked to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cadre_key: str = Field(min_length=1, max_length=200, description="领导干部账号范围标识")
    # Counted as a reader sees them, direction overrides refused (domain.text.Visible).
    cadre_name: Annotated[str, Visible()] = Field(max_length=100, description="领导干部姓名")
    title: Annotated[str, Visible()] = Field(max_length=200, description="职务及分管领域")
    org_ids: list[str] = Field(min_length=1, max_length=200, description="联系的基层党组织")


def parse_request(fields: dict[str, object]) -> ContactPointRequest:
    """The request from a form or a body; :class:`InvalidInput` naming each bad field."""
    try:
        return ContactPointRequest.model_validate(fields)
    except ValidationError as exc:
        raise invalid_input(exc, ContactPointRequest) from None


@dataclass(frozen=True)
class ContactPoint:
    """A contact point with its organisations (ids, in the order given)."""

    row: ContactPointRow
    org_ids: tuple[str, ...]

    def document(self) -> dict[str, object]:
        """As the API shows it."""
        return {
            "point_id": self.row.point_id,
            "cadre_key": self.row.cadre_key,
            "cadre_name": self.row.cadre_name,
            "title": self.row.title,
            "org_ids": list(self.org_ids),
            "created_by": self.row.created_by,
            "created_at": self.row.created_at,
        }


def _in_county(county: str) -> Select[str]:
    """The contact points linked to an organisation of ``county`` (a point's county)."""
    return (
        select(ContactPointOrgRow.point_id)
        .join(OrganisationRow, OrganisationRow.org_id == ContactPointOrgRow.org_id)
        .where(OrganisationRow.county == county)
    )


def _check_orgs(session: Session, org_ids: Sequence[str], county: str) -> None:
    known = set(
        session.scalars(
            select(OrganisationRow.org_id).where(
                OrganisationRow.org_id.in_(set(org_ids)),
                OrganisationRow.active.is_(True),
                # Another county's organisation is as unknown as a missing one.
                OrganisationRow.county == county,
            )
        )
    )
    problems = [
        {"field": f"org_ids.{i}", "reason": "名册中没有这个组织（或它已不在名册中）"}
        for i, org_id in enumerate(org_ids)
        if org_id not in known
    ]
    seen: set[str] = set()
    for i, org_id in enumerate(org_ids):
        if org_id in seen:
            problems.append({"field": f"org_ids.{i}", "reason": "组织重复"})
        seen.add(org_id)
    if problems:
        raise InvalidInput("invalid", "请求参数有误", problems)


def save_contact_point(
    session: Session,
    caller: Caller,
    request: ContactPointRequest,
    *,
    point_id: str | None = None,
    now: datetime | None = None,
) -> ContactPoint:
    """Create (no ``point_id``) or replace a contact point; audited. The caller's session
    commits it."""
    require_role(caller, MANAGERS, FORBIDDEN)
    _check_orgs(session, request.org_ids, caller.county)
    now = now or datetime.now(UTC)
    if point_id is None:
        row = ContactPointRow(
            point_id=f"cp-{uuid.uuid4().hex[:16]}",
            cadre_key=request.cadre_key.strip(),
            cadre_name=request.cadre_name.strip(),
            title=request.title.strip(),
            created_by=caller.username,
            created_at=now,
        )
        session.add(row)
    else:
        found = session.get(ContactPointRow, point_id)
        if (
            found is None
            or session.scalar(
                _in_county(caller.county).where(ContactPointOrgRow.point_id == point_id)
            )
            is None
        ):
            raise NotFound()  # unknown, or another county's point
        row = found
        row.cadre_key, row.cadre_name = request.cadre_key.strip(), request.cadre_name.strip()
        row.title = request.title.strip()
        session.execute(delete(ContactPointOrgRow).where(ContactPointOrgRow.point_id == point_id))
    session.flush()
    session.add_all(ContactPointOrgRow(point_id=row.point_id, org_id=o) for o in request.org_ids)
    session.add(
        audit_row(
            caller,
            "contact_point_saved",
            round_id=None,
            org_id=None,
            detail={
                "point_id": row.point_id,
                "cadre_key": row.cadre_key,
                "cadre_name": row.cadre_name,
                "org_ids": list(request.org_ids),
                "replaced": point_id is not None,
            },
            now=now,
        )
    )
    return ContactPoint(row=row, org_ids=tuple(request.org_ids))


def list_contact_points(session: Session, caller: Caller, cadre_key: str) -> list[ContactPoint]:
    """The county office's view (every point) or a cadre's own (``cadre_key``, their scope
    key); other roles are refused."""
    require_role(caller, READERS)
    query = (
        select(ContactPointRow)
        .where(ContactPointRow.point_id.in_(_in_county(caller.county)))
        .order_by(ContactPointRow.cadre_key, ContactPointRow.point_id)
    )
    if caller.role is Role.LEADING_CADRE:
        query = query.where(ContactPointRow.cadre_key == cadre_key)
    rows = list(session.scalars(query))
    links: dict[str, list[str]] = defaultdict(list)
    for link in session.scalars(
        select(ContactPointOrgRow).where(
            ContactPointOrgRow.point_id.in_([r.point_id for r in rows])
        )
    ):
        links[link.point_id].append(link.org_id)
    return [ContactPoint(row=r, org_ids=tuple(sorted(links[r.point_id]))) for r in rows]


def contact_organisations(session: Session, cadre_key: str) -> frozenset[str]:
    """The organisations of every contact point of the cadre ``cadre_key``."""
    return frozenset(
        session.scalars(
            select(ContactPointOrgRow.org_id)
            .join(ContactPointRow, ContactPointRow.point_id == ContactPointOrgRow.point_id)
            .where(ContactPointRow.cadre_key == cadre_key)
        )
    )
