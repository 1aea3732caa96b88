"""The party-member roster (党员名册): import from CSV/XLSX and list per organisation.

The county office imports for any organisation; a secretary only for their own (rows naming
another organisation are refused as unknown, so the answer does not reveal what exists).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from sqlalchemy import select

from activities.member_store import active_members, read_member_file, store_members
from activities.tables import OrganisationRow
from api.deps import CurrentUser, SessionDep, SessionsDep, require_role
from api.errors import ApiError
from api.idempotency import idempotent
from api.routers.organisations import visible_organisation
from api.scope import scope_condition
from domain.organisation import Role

router = APIRouter(prefix="/api/v1", tags=["公开承诺 commitments"])
MAX_MEMBER_FILE_BYTES = 5 * 1024 * 1024


@router.post("/members/import", summary="导入党员名册（CSV/XLSX）")
async def import_members(
    request: Request,
    sessions: SessionsDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="列：组织编号、党员姓名、党员编号")],
) -> Any:
    """Replace the member lists of the organisations the file names; any bad row refuses
    the whole file (422, every row listed with 第n行·表头)."""
    require_role(user, Role.COUNTY_OFFICE, Role.SECRETARY)
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ApiError(415, "unsupported_media_type", "请上传 .csv 或 .xlsx 文件")
    data = await file.read(MAX_MEMBER_FILE_BYTES + 1)
    if len(data) > MAX_MEMBER_FILE_BYTES:
        raise ApiError(413, "too_large", "党员名册文件不能超过 5MB")

    async def action() -> dict[str, Any]:
        with sessions.begin() as session:
            known = set(
                session.scalars(
                    select(OrganisationRow.org_id).where(
                        scope_condition(user), OrganisationRow.active.is_(True)
                    )
                )
            )
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"members{suffix}"
                path.write_bytes(data)
                roster = read_member_file(path, known_orgs=known)  # raises before any write
            report = store_members(session, roster)
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


@router.get("/organisations/{org_id}/members", summary="组织党员名册")
def list_members(org_id: str, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The organisation's current members in import order."""
    visible_organisation(session, user, org_id)
    return [{"member_id": m.member_id, "name": m.name} for m in active_members(session, org_id)]
