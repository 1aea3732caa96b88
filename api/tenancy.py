"""Many counties on one deployment: the county rule every guarded route passes first.

``api.scope`` keeps each role inside its county for organisations and lists. Rounds and
everything keyed by a round (status, events, notices, files, reports, commendation…) belong
to the round's county, and every route that names a round or an organisation (in its path
or query) is checked here, in one place, before the route runs:

* a round or organisation of a county the caller does not see answers 404, as the scope
  rule answers outside the scope (the caller cannot learn that it exists);
* a city or province office (``Role.CITY_OFFICE``, ``Role.PROVINCE_OFFICE``) reads the
  counties it supervises and acts in none: every write (any method but GET/HEAD) of a
  guarded route answers 403.

The county of a round or an organisation never changes (a round is created in its county;
the roster import refuses an id of another county), so the lookups are memoised for the
app: a guarded request costs no query once its round and organisation were seen.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import OrganisationRow, RoundRow
from api.auth import User
from api.blocking import run_sync
from api.deps import get_current_user
from api.errors import ApiError
from api.ui.session import ui_user
from domain.organisation import ABOVE_COUNTY_ROLES

#: What an office above the county is told when it tries to act inside one.
READ_ONLY = "市委、省委组织部只能查看所辖县的情况，不能在县内办理"
#: The scope rule's answer outside the scope (``chuangzheng.services.errors.NotFound``).
NOT_FOUND = "对象不存在或无权查看"

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Far above a province's rounds and organisations (300,000); cleared whole past it.
_MEMO_LIMIT = 1_000_000


class CountyMemo:
    """The county of rounds and organisations seen so far (facts that never change)."""

    def __init__(self) -> None:
        self.rounds: dict[str, str] = {}
        self.orgs: dict[str, str] = {}

    def remember(self, table: dict[str, str], key: str, county: str) -> None:
        """Keep ``key``'s county (bounded: past the limit the memo starts over)."""
        if len(table) >= _MEMO_LIMIT:
            table.clear()
        table[key] = county


def _memo(request: Request) -> CountyMemo:
    """The app's memo (one per app, so an app over another database starts empty)."""
    memo: CountyMemo | None = getattr(request.app.state, "county_memo", None)
    if memo is None:
        memo = request.app.state.county_memo = CountyMemo()
    return memo


def _lookup(
    sessions: sessionmaker[Session], round_id: str | None, org_id: str | None
) -> tuple[str | None, str | None]:
    """The counties of the round and the organisation (None: no such row)."""
    with sessions() as session:
        round_county = (
            session.scalar(select(RoundRow.county).where(RoundRow.round_id == round_id))
            if round_id is not None
            else None
        )
        org_county = (
            session.scalar(select(OrganisationRow.county).where(OrganisationRow.org_id == org_id))
            if org_id is not None
            else None
        )
    return round_county, org_county


def _named(request: Request, name: str) -> str | None:
    value = request.path_params.get(name) or request.query_params.get(name)
    return str(value) if value else None


async def check_county(request: Request, user: User) -> None:
    """404 when the request names a round or an organisation of a county ``user`` does not
    see; 403 for a write by an office above the county."""
    if user.role in ABOVE_COUNTY_ROLES and request.method not in _READS:
        raise ApiError(403, "forbidden", READ_ONLY)
    # The pages name their round ``round`` in the query (``?round=…``).
    round_id = _named(request, "round_id") or _named(request, "round")
    org_id = _named(request, "org_id")
    if round_id is None and org_id is None:
        return
    memo = _memo(request)
    round_county = memo.rounds.get(round_id) if round_id is not None else None
    org_county = memo.orgs.get(org_id) if org_id is not None else None
    missing_round = round_id is not None and round_county is None
    missing_org = org_id is not None and org_county is None
    if missing_round or missing_org:
        found_round, found_org = await run_sync(
            _lookup,
            request.app.state.sessions,
            round_id if missing_round else None,
            org_id if missing_org else None,
        )
        if round_id is not None and found_round is not None:
            memo.remember(memo.rounds, round_id, found_round)
            round_county = found_round
        if org_id is not None and found_org is not None:
            memo.remember(memo.orgs, org_id, found_org)
            org_county = found_org
    counties = user.counties
    # Unknown rows pass: the route answers its own 404 for what does not exist.
    if (round_county is not None and round_county not in counties) or (
        org_county is not None and org_county not in counties
    ):
        raise ApiError(404, "not_found", NOT_FOUND)


async def api_county_guard(
    request: Request, user: Annotated[User, Depends(get_current_user)]
) -> None:
    """:func:`check_county` for the API's routers (the account is the route's own: FastAPI
    resolves ``get_current_user`` once per request)."""
    await check_county(request, user)


async def ui_county_guard(request: Request, user: Annotated[User, Depends(ui_user)]) -> None:
    """:func:`check_county` for the pages (the login cookie's account, resolved once)."""
    await check_county(request, user)


__all__ = [
    "NOT_FOUND",
    "READ_ONLY",
    "CountyMemo",
    "api_county_guard",
    "check_county",
    "ui_county_guard",
]
