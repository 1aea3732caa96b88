"""Search attributes every organisation workflow carries.

They are registered on the Temporal namespace at start-up (dev server, test server, or by an
operator on a real cluster; see ``chuangzheng.temporal_server.register_search_attributes``).
Business keys live here explicitly so nothing ever parses them back out of a workflow ID.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ROUND_ID = SearchAttributeKey.for_keyword("CzRound")
ORGANISATION_ID = SearchAttributeKey.for_keyword("CzOrganisation")
TOWNSHIP = SearchAttributeKey.for_keyword("CzTownship")
ORG_TYPE = SearchAttributeKey.for_keyword("CzOrgType")
PHASE = SearchAttributeKey.for_keyword("CzPhase")
LIGHT = SearchAttributeKey.for_keyword("CzLight")
OVERDUE = SearchAttributeKey.for_bool("CzOverdue")
# The county (tenant) of the round: set when the organisation workflow starts, never by the
# workflow itself (a start-time attribute: no workflow code path depends on it).
COUNTY = SearchAttributeKey.for_keyword("CzCounty")

ALL_KEYS: tuple[SearchAttributeKey, ...] = (  # type: ignore[type-arg]
    ROUND_ID,
    ORGANISATION_ID,
    TOWNSHIP,
    ORG_TYPE,
    PHASE,
    LIGHT,
    OVERDUE,
    COUNTY,
)
