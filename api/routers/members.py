"""The party-member roster (党员名册): import from CSV/XLSX and list per organisation.

The county office imports for any organisation; a secretary only for their own (rows naming
another organisation are refused as unknown, so the answer does not reveal what exists).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel
from sqlalchemy import select

from activities.member_store import (
    MEMBER_LIMITS,
    OrganisationMembers,
    active_members,
    read_member_bytes,
    store_members,
)
from activities.tables import OrganisationRow
from api.blocking import parse_off_loop, run_sync
from api.deps import CurrentUser, SessionDep, SessionsDep, require_role
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, UPLOAD, errors
from api.routers.organisations import visible_organisation
from api.scope import scope_condition
from api.uploads import read_table_upload
from domain.organisation import Role

router = APIRouter(
    prefix="/api/v1", tags=["公开承诺 commitments"], responses=errors(*AUTHENTICATED, 404, 422)
)


class ImportedMembers(BaseModel):
    """One organisation's imported list against the county roster's 党员人数."""

    org_id: str
    imported: int
    deactivated: int
    roster_member_count: int
    matches_roster: bool


class MemberImport(BaseModel):
    """What an import replaced, per organisation, and how many members it imported."""

    organisations: list[ImportedMembers]
    total: int


class Member(BaseModel):
    """A member on an organisation's list."""

    member_id: str
    name: str


@router.post(
    "/members/import",
    summary="导入党员名册（CSV/XLSX）",
    response_model=MemberImport,
    responses=errors(*UPLOAD),
)
async def import_members(
    request: Request,
    sessions: SessionsDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="列：组织编号、党员姓名、党员编号")],
) -> Any:
    """Replace the member lists of the organisations the file names; any bad row refuses
    the whole file (422, every row listed with 第n行·表头). Limits (413/422, named in the
    answer): see ``activities.member_store.MEMBER_LIMITS``."""
    require_role(user, Role.COUNTY_OFFICE, Role.SECRETARY)
    suffix, data = await read_table_upload(file, MEMBER_LIMITS.max_bytes)

    def known_orgs() -> set[str]:
        with sessions() as session:
            return set(
                session.scalars(
                    select(OrganisationRow.org_id).where(
                        scope_condition(user), OrganisationRow.active.is_(True)
                    )
                )
            )

    async def action() -> dict[str, Any]:
        known = await run_sync(known_orgs)
        # Parsing is seconds of CPU for a big sheet: a worker thread, never the event loop;
        # it raises before anything is written.
        roster = await parse_off_loop(
            read_member_bytes, data, suffix, known_orgs=known, limits=MEMBER_LIMITS
        )

        def store() -> list[OrganisationMembers]:
            with sessions.begin() as session:
                return store_members(session, roster)

        report = await run_sync(store)
        return {
            "organisations": [
                {
                    "org_id": r.org_id,
                    "imported": r.imported,
                    "deactivated": r.deactivated,
                    "roster_member_count": r.roster_member_count,
                    # The coverage guard counts against the county roster's 党员人数.
                    "matches_roster": r.imported == r.roster_member_count,
                }
                for r in report
            ],
            "total": sum(r.imported for r in report),
        }

    return await idempotent(request, sessions, user, action)


@router.get("/organisations/{org_id}/members", summary="组织党员名册", response_model=list[Member])
def list_members(org_id: str, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The organisation's current members in import order."""
    visible_organisation(session, user, org_id)
    return [{"member_id": m.member_id, "name": m.name} for m in active_members(session, org_id)]
