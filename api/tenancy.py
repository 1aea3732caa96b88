"""Many counties on one deployment: the county rule every guarded route passes first.

``api.scope`` keeps each role inside its county for organisations and lists. Rounds and
everything keyed by a round (status, events, notices, files, reports, commendation…) belong
to the round's county, and every route that names a round or an organisation (in its path,
its query, or the body of a posted form: the pages' forms name their round in a field
``round``) is checked here, in one place, before the route runs:

* a round or organisation of a county the caller does not see answers 404, as the scope
  rule answers outside the scope (the caller cannot learn that it exists);
* a city or province office (``Role.CITY_OFFICE``, ``Role.PROVINCE_OFFICE``) reads the
  counties it supervises and acts in none: every write (any method but GET/HEAD) of a
  guarded route answers 403.

The county of a round or an organisation never changes (a round is created in its county;
the roster import refuses an id of another county), so the lookups are memoised for the
app: a guarded request costs no query once its round and organisation were seen.

This is the first line, not the only one: the use cases that act on a round the caller names
check its county themselves (``chuangzheng.services.callers.visible_round``), and those on an
organisation check it through the scope rule (``visible_organisation``), whichever door the
id came in by.
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
    sessions: sessionmaker[Session], round_ids: list[str], org_ids: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The counties of the rounds and the organisations that exist, by id."""
    rounds: dict[str, str] = {}
    orgs: dict[str, str] = {}
    with sessions() as session:
        if round_ids:
            query = select(RoundRow.round_id, RoundRow.county).where(
                RoundRow.round_id.in_(round_ids)
            )
            rounds = {key: county for key, county in session.execute(query)}
        if org_ids:
            found = select(OrganisationRow.org_id, OrganisationRow.county).where(
                OrganisationRow.org_id.in_(org_ids)
            )
            orgs = {key: county for key, county in session.execute(found)}
    return rounds, orgs


#: The bodies read for the names: the pages' forms (a JSON body names its round in the path).
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _named(request: Request, name: str) -> str | None:
    value = request.path_params.get(name) or request.query_params.get(name)
    return str(value) if value else None


async def _posted(request: Request, names: tuple[str, ...]) -> list[str]:
    """Every non-empty value of ``names`` in a posted form's body (a name may repeat: each
    value is checked). The form is parsed once per request (Starlette keeps it, and the NUL
    check, ``api.security.refuse_nul``, has parsed it already); the route reads it again."""
    if request.method in _READS:
        return []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _FORMS:
        return []
    form = await request.form()
    return [str(v) for name in names for v in form.getlist(name) if isinstance(v, str) and v]


async def check_county(request: Request, user: User) -> None:
    """404 when the request names a round or an organisation of a county ``user`` does not
    see (in its path, its query or a posted form's body); 403 for a write by an office above
    the county."""
    if user.role in ABOVE_COUNTY_ROLES and request.method not in _READS:
        raise ApiError(403, "forbidden", READ_ONLY)
    # The pages name their round ``round`` in the query (``?round=…``) or in the form.
    round_ids = {
        *(v for v in (_named(request, "round_id"), _named(request, "round")) if v),
        *await _posted(request, ("round_id", "round")),
    }
    org_ids = {
        *(v for v in (_named(request, "org_id"),) if v),
        *await _posted(request, ("org_id",)),
    }
    if not round_ids and not org_ids:
        return
    memo = _memo(request)
    rounds = {r: memo.rounds[r] for r in round_ids if r in memo.rounds}
    orgs = {o: memo.orgs[o] for o in org_ids if o in memo.orgs}
    missing_rounds = sorted(round_ids - rounds.keys())
    missing_orgs = sorted(org_ids - orgs.keys())
    if missing_rounds or missing_orgs:
        found_rounds, found_orgs = await run_sync(
            _lookup, request.app.state.sessions, missing_rounds, missing_orgs
        )
        for key, county in found_rounds.items():
            memo.remember(memo.rounds, key, county)
        for key, county in found_orgs.items():
            memo.remember(memo.orgs, key, county)
        rounds |= found_rounds
        orgs |= found_orgs
    counties = user.counties
    # Unknown rows pass: the route answers its own 404 for what does not exist.
    if any(county not in counties for county in (*rounds.values(), *orgs.values())):
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
