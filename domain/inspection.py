"""The supervisors' toolkit as data (seed 002 §六(五)): discretionary rectification orders
(限期整改 for 思想上不重视、工作上不得力), spot-check verdicts (随机抽查) and supervision records
(座谈会, 督查). Pure: kinds, labels and the rules a request must meet; no I/O.
"""

from __future__ import annotations

from enum import StrEnum

from domain.organisation import Role

#: Who may order rectification at discretion (限期整改): the county office, a guidance group
#: and a township committee, each within its scope (seed 002 §六(五) "有关党组织").
DISCRETION_ROLES: frozenset[Role] = frozenset(
    {Role.COUNTY_OFFICE, Role.GUIDANCE_GROUP, Role.TOWNSHIP}
)

#: Who may draw a spot check and record its inspections: the county office and a guidance
#: group (issue 15).
SPOT_CHECK_ROLES: frozenset[Role] = frozenset({Role.COUNTY_OFFICE, Role.GUIDANCE_GROUP})

#: Who may keep supervision records (座谈会, 督查): every supervising body above the
#: organisation.
RECORD_ROLES: frozenset[Role] = frozenset(
    {Role.COUNTY_OFFICE, Role.GUIDANCE_GROUP, Role.TOWNSHIP, Role.INSTRUCTOR}
)

#: The workflow's ``OrderRectification.source`` of each way an order is given.
DISCRETION_SOURCE = "discretion"
INSPECTION_SOURCE = "inspection"

#: Reason and deadline limits of an order.
REASON_MIN, REASON_MAX = 4, 1000
PERIOD_MAX_WORKING_DAYS = 60


class RectificationGround(StrEnum):
    """Why an organisation is criticised and ordered to rectify (seed 002 §六(五))."""

    NOT_TAKEN_SERIOUSLY = "not_taken_seriously"
    INEFFECTIVE_WORK = "ineffective_work"
    SPOT_CHECK = "spot_check"
    OTHER = "other"

    @property
    def label(self) -> str:
        """The ground as the order's text names it."""
        return _GROUND_LABELS[self]


_GROUND_LABELS: dict[RectificationGround, str] = {
    RectificationGround.NOT_TAKEN_SERIOUSLY: "思想上不重视",
    RectificationGround.INEFFECTIVE_WORK: "工作上不得力",
    RectificationGround.SPOT_CHECK: "随机抽查未通过",
    RectificationGround.OTHER: "其他问题",
}


def order_reason(ground: RectificationGround, reason: str) -> str:
    """The reason the workflow and the 整改通知 carry: the ground, then the supervisor's words
    (ending in a full stop, as the notice's text continues "请于…前完成整改")."""
    text = reason.strip().rstrip("。.")
    return f"经督查，存在{ground.label}的问题：{text}。"


class InspectionVerdict(StrEnum):
    """A spot check's verdict on one organisation."""

    PENDING = "pending"
    GOOD = "good"
    ADEQUATE = "adequate"
    RECTIFY = "rectify"

    @property
    def label(self) -> str:
        """Chinese name shown to users and in the circular."""
        return _VERDICT_LABELS[self]


_VERDICT_LABELS: dict[InspectionVerdict, str] = {
    InspectionVerdict.PENDING: "待检查",
    InspectionVerdict.GOOD: "好",
    InspectionVerdict.ADEQUATE: "一般",
    InspectionVerdict.RECTIFY: "差，限期整改",
}


class SupervisionKind(StrEnum):
    """A supervision record's kind: a symposium or a supervision visit."""

    SYMPOSIUM = "symposium"
    VISIT = "visit"

    @property
    def label(self) -> str:
        """Chinese name shown to users."""
        return _KIND_LABELS[self]


_KIND_LABELS: dict[SupervisionKind, str] = {
    SupervisionKind.SYMPOSIUM: "座谈会",
    SupervisionKind.VISIT: "督查",
}
