"""The party-member roster (党员名册): import from CSV/XLSX and list per organisation.

The county office imports for any organisation; a secretary only for their own (rows naming
another organisation are refused as unknown, so the answer does not reveal what exists).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel

from activities.member_store import MEMBER_LIMITS
from api.blocking import parse_off_loop
from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep
from api.errors import as_api_error
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, UPLOAD, errors
from api.uploads import read_table_upload
from chuangzheng.services import members
from chuangzheng.services.errors import ServiceError

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
    caller = service_caller(user, request)
    try:
        members.authorise_import(caller)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    suffix, data = await read_table_upload(file, MEMBER_LIMITS.max_bytes)

    async def action() -> dict[str, Any]:
        try:
            # Parsing is seconds of CPU for a big sheet: the API's parse processes.
            report = await members.import_members(
                sessions, caller, data, suffix, parse=parse_off_loop
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return {
            "organisations": [
                {
                    "org_id": r.org_id,
                    "imported": r.imported,
                    "deactivated": r.deactivated,
                    "roster_member_count": r.roster_member_count,
                    "matches_roster": members.matches_roster(r),
                }
                for r in report.organisations
            ],
            "total": report.total,
        }

    return await idempotent(request, sessions, user, action)


@router.get("/organisations/{org_id}/members", summary="组织党员名册", response_model=list[Member])
def list_members(
    org_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """The organisation's current members in import order."""
    try:
        rows = members.members_of(session, service_caller(user, request), org_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return [{"member_id": m.member_id, "name": m.name} for m in rows]
