"""Who may see and act on which organisation: one rule per role, applied on every route.

The rule is checked on the object itself (the organisation a request names), and the same
rule, as a SQL condition, filters every list. Objects outside the scope answer 404, so a
caller cannot learn that they exist.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from activities.tables import OrganisationRow
from api.auth import User
from domain.organisation import Organisation, Role

#: Roles that see every organisation of the county.
COUNTY_WIDE: frozenset[Role] = frozenset({Role.COUNTY_OFFICE, Role.ASSESSMENT_GROUP})


def covers(user: User, org: Organisation) -> bool:
    """Whether ``user`` may see (and, as the workflow allows, act on) ``org``."""
    match user.role:
        case Role.COUNTY_OFFICE | Role.ASSESSMENT_GROUP:
            return True
        case Role.GUIDANCE_GROUP:
            return org.system.value == user.scope_key
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


def scope_condition(user: User) -> ColumnElement[bool]:
    """:func:`covers` as a condition on ``organisations`` (for lists and counts)."""
    match user.role:
        case Role.COUNTY_OFFICE | Role.ASSESSMENT_GROUP:
            return true()
        case Role.GUIDANCE_GROUP:
            return OrganisationRow.system == user.scope_key
        case Role.TOWNSHIP:
            return OrganisationRow.township == user.scope_key
        case Role.INSTRUCTOR:
            return OrganisationRow.instructor == user.scope_key
        case Role.SECRETARY:
            return OrganisationRow.org_id == user.scope_key
        case Role.LEADING_CADRE:
            return OrganisationRow.org_id.in_(sorted(user.contact_orgs))
    return false()


def inbox_key(user: User) -> str:
    """The ``recipient_key`` notices for ``user``'s role carry (see ``supervisors_of``)."""
    return "county" if user.role is Role.COUNTY_OFFICE else user.scope_key
