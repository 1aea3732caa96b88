"""Who may see and act on which organisation: one rule per role, applied on every route.

The rule is checked on the object itself (the organisation a request names), and the same
rule, as a SQL condition, filters every list. Objects outside the scope answer 404, so a
caller cannot learn that they exist.

Many counties share one deployment (``counties``): every role inside a county covers only
its own county's organisations, whatever its scope key says (township names, instructors'
names and systems repeat across counties), and a city or province office (``supervised``)
covers the organisations of the counties it supervises, to read only (``api.tenancy``
refuses its actions). Rounds follow the same rule through their county (``api.tenancy``).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, select
from sqlalchemy.orm import InstrumentedAttribute

from activities.tables import OrganisationRow, RoundRow
from api.auth import User
from domain.organisation import ABOVE_COUNTY_ROLES, Organisation, Role

#: Roles that see every organisation of a round they may see (its county's, or for the
#: offices above the county, every round of the counties they supervise).
COUNTY_WIDE: frozenset[Role] = frozenset(
    {Role.COUNTY_OFFICE, Role.ASSESSMENT_GROUP, *ABOVE_COUNTY_ROLES}
)


def _within(user: User, org: Organisation) -> bool:
    """:func:`covers` inside the organisation's county (the county already checked)."""
    match user.role:
        case Role.COUNTY_OFFICE | Role.ASSESSMENT_GROUP | Role.CITY_OFFICE | Role.PROVINCE_OFFICE:
            return True
        case Role.GUIDANCE_GROUP:
            return org.system == user.scope_key
        case Role.TOWNSHIP:
            return org.township == user.scope_key
        case Role.INSTRUCTOR:
            return org.instructor == user.scope_key
        case Role.SECRETARY:
            return org.id == user.scope_key
        case Role.LEADING_CADRE:
            # The organisations of the cadre's contact points (联系点), read with the token.
            return org.id in user.contact_orgs
    return False


def covers(user: User, org: Organisation) -> bool:
    """Whether ``user`` may see (and, as the workflow allows, act on) ``org``: in one of the
    user's counties, and inside it in the role's scope."""
    return org.county in user.counties and _within(user, org)


def scope_condition(user: User) -> ColumnElement[bool]:
    """:func:`covers` as a condition on ``organisations`` (for lists and counts); it leads
    with the county, as the organisations' scope indexes do."""
    if user.role in ABOVE_COUNTY_ROLES:
        return OrganisationRow.county.in_(sorted(user.supervised)) if user.supervised else false()
    county = OrganisationRow.county == user.county
    match user.role:
        case Role.COUNTY_OFFICE | Role.ASSESSMENT_GROUP:
            return county
        case Role.GUIDANCE_GROUP:
            return and_(county, OrganisationRow.system == user.scope_key)
        case Role.TOWNSHIP:
            return and_(county, OrganisationRow.township == user.scope_key)
        case Role.INSTRUCTOR:
            return and_(county, OrganisationRow.instructor == user.scope_key)
        case Role.SECRETARY:
            return and_(county, OrganisationRow.org_id == user.scope_key)
        case Role.LEADING_CADRE:
            return and_(county, OrganisationRow.org_id.in_(sorted(user.contact_orgs)))
    return false()


def inbox_key(user: User) -> str:
    """The ``recipient_key`` notices for ``user``'s role carry (see ``supervisors_of``).

    The stored keys name a recipient inside its county (``county``, a township's or an
    instructor's name); the inbox queries also keep to the user's county through the
    notice's organisation (``in_county``), so the same key in two counties never meets."""
    return "county" if user.role is Role.COUNTY_OFFICE else user.scope_key


def in_county(
    user: User, org_id: ColumnElement[str] | InstrumentedAttribute[str]
) -> ColumnElement[bool]:
    """A condition on a row's organisation id: the organisation is not of a county ``user``
    does not see (for rows keyed by organisation that carry no county of their own: notices,
    escalations). Put as "not of another county", so rows of an organisation the roster
    never had keep showing, as they did before counties."""
    # NOT EXISTS on the organisation's key: one index probe per row the other conditions keep.
    return ~(
        select(OrganisationRow.org_id)
        .where(
            OrganisationRow.org_id == org_id,
            OrganisationRow.county.not_in(sorted(user.counties)),
        )
        .exists()
    )


def round_in_county(
    user: User, round_id: ColumnElement[str] | InstrumentedAttribute[str]
) -> ColumnElement[bool]:
    """A condition on a row's round id: the round is not of a county ``user`` does not see
    (for rows keyed by round that carry no county of their own: digests, circulars)."""
    return ~(
        select(RoundRow.round_id)
        .where(RoundRow.round_id == round_id, RoundRow.county.not_in(sorted(user.counties)))
        .exists()
    )
