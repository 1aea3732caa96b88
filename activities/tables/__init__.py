"""The SQL read model, one module per area, re-exported here so Alembic sees ``metadata``.

The read model is a projection of Temporal history for dashboards and reports; rows are
written only by idempotent activities, keyed by stable ids (event id, notice id, round id,
(round, organisation)). Enum-valued columns hold the enum's string value, so a value stored
today keeps its meaning when the enum grows.
"""

from __future__ import annotations

from sqlalchemy import Table

from activities.tables.access import (
    ActivationCodeRow,
    AuditRow,
    IdempotencyRow,
    SignInSessionRow,
    SignInThrottleRow,
    UserRow,
)
from activities.tables.base import Base, NaiveDatetimeError, UTCDateTime
from activities.tables.briefings import BriefingRow
from activities.tables.campaign import (
    CampaignEventRow,
    CampaignStatusRow,
    EscalationRow,
    NoticeRow,
    PhaseStatusRow,
    RoundDefinitionRow,
    RoundRow,
    StepStatusRow,
    SubmissionRow,
    UploadedFileRow,
)
from activities.tables.commendation import (
    CommendationApprovalRow,
    CommendationDecisionRow,
    CommendationDeclarationRow,
    CommendationHonourRow,
    CommendationPublicationRow,
    CommendationScoreSheetRow,
)
from activities.tables.commitments import (
    CommitmentAbsenceRow,
    CommitmentItemRow,
    CommitmentReviewRow,
    CommitmentRow,
    FulfilmentEntryRow,
    PartyMemberRow,
)
from activities.tables.delivery import notice_deliveries
from activities.tables.digest import CircularRow, DigestRow
from activities.tables.evaluations import (
    BallotRow,
    BallotTokenRow,
    EvaluationItemRow,
    EvaluationRow,
)
from activities.tables.roster import (
    OrganisationRow,
    PersonRoleRow,
    RosterDepartureRow,
    SystemRow,
    TownshipRow,
)
from activities.tables.round_state import RoundPlanRow, RoundVerdictRow
from activities.tables.supervision import (
    ContactPointOrgRow,
    ContactPointRow,
    InspectionDrawRow,
    InspectionRow,
    RectificationOrderRow,
    SupervisionRecordOrgRow,
    SupervisionRecordRow,
)

metadata = Base.metadata
campaign_events: Table = metadata.tables[CampaignEventRow.__tablename__]
campaign_status: Table = metadata.tables[CampaignStatusRow.__tablename__]
notices: Table = metadata.tables[NoticeRow.__tablename__]
rounds: Table = metadata.tables[RoundRow.__tablename__]
townships: Table = metadata.tables[TownshipRow.__tablename__]
systems: Table = metadata.tables[SystemRow.__tablename__]
organisations: Table = metadata.tables[OrganisationRow.__tablename__]
person_roles: Table = metadata.tables[PersonRoleRow.__tablename__]
phase_status: Table = metadata.tables[PhaseStatusRow.__tablename__]
step_status: Table = metadata.tables[StepStatusRow.__tablename__]
submissions: Table = metadata.tables[SubmissionRow.__tablename__]
escalations: Table = metadata.tables[EscalationRow.__tablename__]
audit_log: Table = metadata.tables[AuditRow.__tablename__]
digests: Table = metadata.tables[DigestRow.__tablename__]
circulars: Table = metadata.tables[CircularRow.__tablename__]

__all__ = [
    "ActivationCodeRow",
    "AuditRow",
    "BallotRow",
    "BallotTokenRow",
    "Base",
    "BriefingRow",
    "CampaignEventRow",
    "CampaignStatusRow",
    "CircularRow",
    "CommendationApprovalRow",
    "CommendationDecisionRow",
    "CommendationDeclarationRow",
    "CommendationHonourRow",
    "CommendationPublicationRow",
    "CommendationScoreSheetRow",
    "CommitmentAbsenceRow",
    "CommitmentItemRow",
    "CommitmentReviewRow",
    "CommitmentRow",
    "ContactPointOrgRow",
    "ContactPointRow",
    "DigestRow",
    "EscalationRow",
    "EvaluationItemRow",
    "EvaluationRow",
    "FulfilmentEntryRow",
    "IdempotencyRow",
    "InspectionDrawRow",
    "InspectionRow",
    "NaiveDatetimeError",
    "NoticeRow",
    "OrganisationRow",
    "PartyMemberRow",
    "PersonRoleRow",
    "PhaseStatusRow",
    "RectificationOrderRow",
    "RosterDepartureRow",
    "RoundDefinitionRow",
    "RoundPlanRow",
    "RoundRow",
    "RoundVerdictRow",
    "SignInSessionRow",
    "SignInThrottleRow",
    "StepStatusRow",
    "SubmissionRow",
    "SupervisionRecordOrgRow",
    "SupervisionRecordRow",
    "SystemRow",
    "TownshipRow",
    "UTCDateTime",
    "UploadedFileRow",
    "UserRow",
    "audit_log",
    "campaign_events",
    "campaign_status",
    "circulars",
    "digests",
    "escalations",
    "metadata",
    "notice_deliveries",
    "notices",
    "organisations",
    "person_roles",
    "phase_status",
    "rounds",
    "step_status",
    "submissions",
    "systems",
    "townships",
]
