"""The 预警 of the round's daily check (``check_round`` with the early-warning sender): over
the real time-skipping server's client and a real read model (SQLite, and PostgreSQL when it
answers), with a forecast model fitted on paced simulated rounds and kept under the data
directory, delivered like escalations: the inbox, and instructors by mail to a real SMTP
receiver.

A laggard organisation (nothing done half-way through 动员部署, phases missed in its previous
round) gets exactly one 预警 to its instructor across two daily checks and a retried one; a
diligent one (ahead of 序时进度) none; an organisation that finished the phase none; with no
model kept, nothing is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.channels import deliveries_of, router_from_config
from activities.channels.config import ChannelsConfig
from activities.notifier import InboxNotifier
from activities.recording import RecordingActivities
from activities.roster_files import read_roster_file
from activities.round_contracts import CohortCheck
from activities.round_fanout import RoundFanOutActivities
from activities.round_progress import RoundProgressActivities
from activities.tables import (
    AuditRow,
    CampaignStatusRow,
    OrganisationRow,
    PhaseStatusRow,
    RoundDefinitionRow,
    RoundRow,
    notices,
)
from chuangzheng.services.audit_log import action_label
from chuangzheng.services.callers import Caller
from chuangzheng.services.errors import InvalidInput, NotFound, Refused
from chuangzheng.services.forecast import model_path, read_round, save_model
from chuangzheng.services.forecast_training import SIMULATED_START, PriorRound, fit_simulated
from chuangzheng.services.forecast_warning import (
    THRESHOLD_ACTION,
    EarlyWarningSender,
    due_warnings,
    round_rung,
    round_threshold,
    set_round_threshold,
)
from chuangzheng.settings import Settings
from chuangzheng.simulation.environment import DEFAULT_PLAN, DEFAULT_ROSTER
from chuangzheng.simulation.model import CharacterMix
from domain.calendar import SHANGHAI, deadline_wording
from domain.forecast import ForecastModel, Windows, features_at
from domain.organisation import Organisation, Role
from domain.phases import WORKING_PHASES, Phase
from domain.state import Actor
from tests.activities.receivers import MailBox

ROUND = "r-warn"
PHASE = Phase.MOBILISATION


@pytest.fixture(scope="module")
def model() -> ForecastModel:
    """Fitted on one small paced simulated round (with a kept previous round); the county
    office's threshold 0.3."""
    fitted = fit_simulated((1,), (CharacterMix(),), limit=60, prior=PriorRound.PERSISTENT)
    return fitted.with_threshold(0.3)


def _orgs() -> tuple[Organisation, Organisation, Organisation]:
    roster = read_roster_file(DEFAULT_ROSTER).in_scope(types=None, townships=None)
    laggard, diligent, finished = roster[0], roster[1], roster[2]
    return laggard, diligent, finished


def _write_round(session: Session, windows: Windows) -> None:
    """The round, its roster rows, a previous round the laggard missed phases in, and each
    organisation's entry into 动员部署 (the finished one completed it)."""
    laggard, diligent, finished = _orgs()
    now = SIMULATED_START
    session.add(
        RoundRow(
            round_id=ROUND, name="预警", campaign_id="seed-002", round_plan_id="round-1",
            starts_at=SIMULATED_START, status="running", kicked_off_by="county", updated_at=now,
        )
    )  # fmt: skip
    session.add(
        RoundDefinitionRow(
            round_id=ROUND, plan_source="seed-002", plan_yaml=DEFAULT_PLAN.read_text("utf-8"),
            round_plan_id="round-1", starts_at=SIMULATED_START, created_by="county",
            created_at=SIMULATED_START, kicked_off_at=SIMULATED_START,
        )
    )  # fmt: skip
    before = SIMULATED_START - timedelta(days=365)
    session.add(
        RoundRow(
            round_id="r-warn-before", name="上一轮", campaign_id="seed-002",
            round_plan_id="round-1", starts_at=before, status="completed",
            kicked_off_by="county", updated_at=before,
        )
    )  # fmt: skip
    for i, org in enumerate((laggard, diligent, finished)):
        session.add(
            OrganisationRow(
                org_id=org.id, name=org.name, org_type=org.type.value, township=org.township,
                system=org.system, member_count=org.member_count,
                secretary=org.secretary, instructor=org.instructor, active=True,
                row_number=i + 1, updated_at=now,
            )
        )  # fmt: skip
        for j, phase in enumerate(WORKING_PHASES):
            late = org is laggard and j < 2
            session.add(
                PhaseStatusRow(
                    round_id="r-warn-before", org_id=org.id, phase=phase.value,
                    status="completed", deadline=before, opened_at=before,
                    completed_at=before, outcome="late" if late else "on_time", event_seq=1,
                )
            )  # fmt: skip
    opens, deadline = windows[PHASE]
    for org, progress in ((laggard, 0.0), (diligent, 0.6)):
        _status(session, org, PHASE, progress, deadline, now)
        session.add(
            PhaseStatusRow(
                round_id=ROUND, org_id=org.id, phase=PHASE.value, status="open",
                deadline=deadline, opened_at=opens, completed_at=None, outcome=None,
                event_seq=1,
            )
        )  # fmt: skip
    # Finished 动员部署 at once, behind in nothing; now in 公开承诺.
    _status(
        session, finished, Phase.PUBLIC_COMMITMENT, 0.0, windows[Phase.PUBLIC_COMMITMENT][1], now
    )
    session.add(
        PhaseStatusRow(
            round_id=ROUND, org_id=finished.id, phase=PHASE.value, status="completed",
            deadline=deadline, opened_at=opens, completed_at=opens + timedelta(hours=1),
            outcome="on_time", event_seq=1,
        )
    )  # fmt: skip
    session.commit()


def _status(
    session: Session, org: Organisation, phase: Phase, progress: float, deadline: datetime,
    now: datetime,
) -> None:  # fmt: skip
    session.merge(
        CampaignStatusRow(
            round_id=ROUND, org_id=org.id, org_name=org.name, township=org.township,
            system=org.system, org_type=org.type.value, phase=phase.value,
            phase_status="open", light="green", overdue=False, deadline=deadline,
            top_rung=None, closed=False, event_seq=1, updated_at=now, progress=progress,
        )
    )  # fmt: skip


def _warnings(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as session:
        rows = session.execute(
            select(notices).where(notices.c.round_id == ROUND, notices.c.kind == "early_warning")
        )
        return [dict(r._mapping) for r in rows]


async def test_a_laggard_is_warned_once_before_its_deadline_and_a_diligent_one_never(
    time_skipping_env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    model: ForecastModel,
    tmp_path: Path,
    mailbox: MailBox,
) -> None:
    with sessions() as session:
        view = read_round(session, ROUND)
        assert view is None  # nothing yet
    # The plan's windows, as the service resolves them for the round.
    with sessions.begin() as session:
        session.add(
            RoundDefinitionRow(
                round_id="r-probe", plan_source="seed-002",
                plan_yaml=DEFAULT_PLAN.read_text("utf-8"), round_plan_id="round-1",
                starts_at=SIMULATED_START, created_by="county", created_at=SIMULATED_START,
                kicked_off_at=SIMULATED_START,
            )
        )  # fmt: skip
        session.add(
            RoundRow(
                round_id="r-probe", name="probe", campaign_id="seed-002",
                round_plan_id="round-1", starts_at=SIMULATED_START, status="running",
                kicked_off_by="county", updated_at=SIMULATED_START,
            )
        )  # fmt: skip
    with sessions() as session:
        probe = read_round(session, "r-probe")
        assert probe is not None
        windows = probe.windows
        session.query(RoundRow).filter_by(round_id="r-probe").delete()
        session.query(RoundDefinitionRow).filter_by(round_id="r-probe").delete()
        _write_round(session, windows)
    laggard, diligent, finished = _orgs()
    opens, deadline = windows[PHASE]
    # Two daily checks at 08:00 Asia/Shanghai, at about 40 % and 50 % of the window.
    first = (opens + (deadline - opens) * 0.4).astimezone(SHANGHAI)
    first = first.replace(hour=8, minute=0, second=0, microsecond=0)
    second = first + timedelta(days=1)
    while second.weekday() >= 5:
        second += timedelta(days=1)
    assert second < deadline

    # The escalations' channels: the inbox, and instructors by mail (a real SMTP receiver).
    channels = ChannelsConfig.model_validate(
        {
            "public_base_url": "https://cxzy.example.gov.cn",
            "routes": {"instructor": ["email"]},
            "smtp": {
                "host": "127.0.0.1",
                "port": mailbox.port,
                "security": "none",
                "from_address": "cxzy@example.gov.cn",
            },
            "role_addresses": {"instructor": {"email": "instructors@example.gov.cn"}},
        }
    )
    router = router_from_config(sessions, channels, Settings())
    recording = RecordingActivities(sessions, router)
    sender = EarlyWarningSender(sessions, recording.deliver_notices, tmp_path)
    progress = RoundProgressActivities(sessions)
    fanout = RoundFanOutActivities(
        time_skipping_env.client, "queue", sessions, progress.plans, early_warnings=sender
    )
    env = ActivityEnvironment()

    def check(at: datetime) -> CohortCheck:
        return CohortCheck(round_id=ROUND, pro_rata={PHASE: 0.4}, tolerance=0.1, as_of=at)

    # No model kept: the check runs, nothing is sent.
    await env.run(fanout.check_round, check(first))
    assert _warnings(sessions) == []
    assert (await sender(ROUND, first)).fitted is False

    save_model(model, model_path(tmp_path))
    # What the forecast says at the first check: the laggard above the threshold, the
    # diligent organisation below it, the finished phase not scored at all.
    with sessions() as session:
        view = read_round(session, ROUND)
        assert view is not None
        forecasts = {
            (f.org_id, f.phase): model.forecast(f)
            for f in features_at(view.snapshots, first, view.windows, view.calendar)
        }
        scored = {key: f.probability for key, f in forecasts.items()}
    assert scored[(laggard.id, PHASE)] >= model.threshold > scored[(diligent.id, PHASE)]
    assert (finished.id, PHASE) not in scored

    await env.run(fanout.check_round, check(first))
    # The diligent one moves on; the laggard still has nothing; a second daily check, and
    # the same check retried.
    with sessions.begin() as session:
        _status(session, diligent, PHASE, 0.8, deadline, second)
    await env.run(fanout.check_round, check(second))
    await env.run(fanout.check_round, check(second))
    report = await sender(ROUND, second)
    assert (report.fitted, report.sent, report.already_warned) == (True, 0, 1)

    sent = _warnings(sessions)
    assert [(w["org_id"], w["phase"], w["recipient_role"]) for w in sent] == [
        (laggard.id, PHASE.value, "instructor")
    ]
    warning = sent[0]
    assert warning["recipient_key"] == laggard.instructor
    assert warning["rung"] is None
    percent = round(scored[(laggard.id, PHASE)] * 100)
    assert warning["title"] == f"【预警】{laggard.name}动员部署阶段预计逾期（{percent}%）"
    local_deadline = deadline_wording(deadline)  # "… 24:00" of its last day
    body = str(warning["body"])
    assert f"动员部署阶段将于{local_deadline}截止" in body
    assert f"{percent}%" in body and "主要原因：" in body
    # The forecast's own reasons (nothing done yet in the phase, its record, …), in Chinese.
    reasons = forecasts[(laggard.id, PHASE)].reasons
    assert reasons and all(r.text in body for r in reasons)
    # The same mail once, however many checks ran.
    assert len(mailbox.mails) == 1
    assert "预警" in str(mailbox.mails[0]["Subject"]) and laggard.name in str(
        mailbox.mails[0]["Subject"]
    )
    assert len(deliveries_of(sessions, str(warning["notice_id"]))) == 1
    created = warning["created_at"]
    assert isinstance(created, datetime)
    if created.tzinfo is None:  # SQLite keeps UTC naive
        created = created.replace(tzinfo=UTC)
    assert created == first  # sent by the first check that found it due


# ----- the 预警 rung and the round's threshold ------------------------------------------------


def _county_caller(role: Role = Role.COUNTY_OFFICE) -> Caller:
    return Caller(
        actor=Actor(user="county" if role is Role.COUNTY_OFFICE else "ins", role=role),
        covers=lambda _org: True,
        condition=true(),
    )


def _define(session: Session, round_id: str, plan_yaml: str) -> None:
    # A round is its row (its county) and its definition, created together.
    session.add(
        RoundRow(
            round_id=round_id, name=round_id, campaign_id="seed-002", round_plan_id="round-1",
            starts_at=SIMULATED_START, status="running", kicked_off_by="county",
            updated_at=SIMULATED_START,
        )
    )  # fmt: skip
    session.add(
        RoundDefinitionRow(
            round_id=round_id, plan_source="seed-002", plan_yaml=plan_yaml,
            round_plan_id="round-1", starts_at=SIMULATED_START, created_by="county",
            created_at=SIMULATED_START, kicked_off_at=SIMULATED_START,
        )
    )  # fmt: skip


def test_the_threshold_is_the_plan_rungs_until_the_county_office_changes_it_audited(
    sessions: sessionmaker[Session],
) -> None:
    seed = DEFAULT_PLAN.read_text("utf-8")
    without = seed.replace("  early_warning:\n", "  # early_warning:\n", 1)
    for key in ("kind", "name", "recipient", "threshold", "not_before", "text"):
        without = without.replace(f"\n    {key}: ", f"\n  #  {key}: ", 1)
    with sessions.begin() as session:
        _define(session, "r-rung", seed)
        _define(session, "r-no-rung", without)
    with sessions() as session:
        rung = round_rung(session, "r-rung")
        assert rung is not None and rung.recipient is Role.INSTRUCTOR
        assert round_threshold(session, "r-rung") == 0.3  # the plan's
        assert round_rung(session, "r-no-rung") is None
        assert round_threshold(session, "r-no-rung") is None

    # The county office changes it, with a reason: audited, and in force from now on.
    with sessions.begin() as session:
        made = set_round_threshold(
            session, _county_caller(), "r-rung", 0.45, reason="预警过多，先盯最危险的"
        )
    assert (made.previous, made.threshold, made.plan_threshold) == (0.3, 0.45, 0.3)
    with sessions.begin() as session:
        set_round_threshold(session, _county_caller(), "r-rung", 0.5)
    with sessions() as session:
        assert round_threshold(session, "r-rung") == 0.5
        rows = session.scalars(
            select(AuditRow).where(AuditRow.action == THRESHOLD_ACTION).order_by(AuditRow.at)
        ).all()
    assert [(r.user, r.round_id, r.detail["threshold"], r.detail["previous"]) for r in rows] == [
        ("county", "r-rung", 0.45, 0.3),
        ("county", "r-rung", 0.5, 0.45),
    ]
    assert rows[0].detail["reason"] == "预警过多，先盯最危险的"
    assert action_label(THRESHOLD_ACTION) == "修改预警线"

    # Refused: another role, a threshold that is no probability, a round without the rung.
    with sessions.begin() as session, pytest.raises(Refused) as forbidden:
        set_round_threshold(session, _county_caller(Role.INSTRUCTOR), "r-rung", 0.2)
    assert forbidden.value.code == "forbidden"
    with sessions.begin() as session, pytest.raises(InvalidInput) as bad:
        set_round_threshold(session, _county_caller(), "r-rung", 1.2)
    assert (
        bad.value.errors[0]["field"] == "threshold"
        and "0 与 1 之间" in bad.value.errors[0]["reason"]
    )
    with sessions.begin() as session, pytest.raises(Refused) as no_rung:
        set_round_threshold(session, _county_caller(), "r-no-rung", 0.2)
    assert no_rung.value.code == "no_early_warning"
    with sessions.begin() as session, pytest.raises(NotFound):
        set_round_threshold(session, _county_caller(), "r-unknown", 0.2)
    with sessions() as session:  # nothing of the refusals was recorded
        assert (
            session.scalar(
                select(func.count())
                .select_from(AuditRow)
                .where(AuditRow.action == THRESHOLD_ACTION)
            )
            == 2
        )


async def test_the_daily_check_follows_the_rung_and_the_county_offices_threshold(
    sessions: sessionmaker[Session], model: ForecastModel, tmp_path: Path
) -> None:
    """The laggard of the round above, at 40 % of 动员部署: warned at the plan's 30 %; not
    at a threshold the county office raised above its probability; and nobody in a round
    whose plan has no 预警 rung."""
    with sessions.begin() as session:
        _define(session, "r-probe-2", DEFAULT_PLAN.read_text("utf-8"))
    with sessions() as session:
        probe = read_round(session, "r-probe-2")
        assert probe is not None
        windows = probe.windows
        _write_round(session, windows)
    laggard, _diligent, _finished = _orgs()
    opens, deadline = windows[PHASE]
    at = opens + (deadline - opens) * 0.4
    save_model(model, model_path(tmp_path))
    with sessions() as session:
        view = read_round(session, ROUND)
        assert view is not None
        probability = next(
            model.probability(f)
            for f in features_at(view.snapshots, at, view.windows, view.calendar)
            if f.org_id == laggard.id and f.phase is PHASE
        )
        rung = round_rung(session, ROUND)
        due, _, _, _ = due_warnings(
            session, ROUND, model, now=at, rung=rung, threshold=round_threshold(session, ROUND)
        )
    assert probability >= 0.3 and [w.org_id for w in due] == [laggard.id]
    # Raised above the laggard's probability: nobody is due.
    raised = min(0.99, probability + 0.01)
    with sessions.begin() as session:
        set_round_threshold(session, _county_caller(), ROUND, raised)
    with sessions() as session:
        due, _, _, _ = due_warnings(
            session, ROUND, model, now=at, rung=rung, threshold=round_threshold(session, ROUND)
        )
    assert due == []
    sender = EarlyWarningSender(
        sessions, RecordingActivities(sessions, InboxNotifier(sessions)).deliver_notices, tmp_path
    )
    assert (await sender(ROUND, at)).sent == 0
    # Back under it: the sender warns the rung's recipient, with the rung's text.
    with sessions.begin() as session:
        set_round_threshold(session, _county_caller(), ROUND, 0.3)
    assert (await sender(ROUND, at)).sent == 1
    [warning] = _warnings(sessions)
    assert warning["recipient_role"] == "instructor"
    assert str(warning["body"]).endswith("请在截止前督促其按序时进度完成规定动作。")
    # A plan without the rung: the same organisations, nothing sent.
    with sessions.begin() as session:
        definition = session.get(RoundDefinitionRow, ROUND)
        assert definition is not None
        definition.plan_yaml = definition.plan_yaml.replace("  early_warning:\n", "  # x:\n", 1)
        for key in ("kind", "name", "recipient", "threshold", "not_before", "text"):
            definition.plan_yaml = definition.plan_yaml.replace(
                f"\n    {key}: ", f"\n  #  {key}: ", 1
            )
    with sessions() as session:
        assert round_rung(session, ROUND) is None
    silent = await sender(ROUND, at)
    assert (silent.fitted, silent.scored, silent.sent) == (True, 0, 0)
