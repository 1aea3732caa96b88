"""Metrics and traces over the real things: a worker's Prometheus endpoint scraped over HTTP
while it runs an organisation's workflow on the dev server, and spans received by a real
OTLP/HTTP receiver from the API and worker processes (``chuangzheng api``, ``chuangzheng
worker``) while the county office kicks off a round and a secretary submits evidence.

The traces test runs the API and the worker as processes: OpenTelemetry's tracer provider
can be set once per process, and this one (the test session) must keep exporting nowhere.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_text
from activities.roster_store import store_roster
from activities.tables import CampaignStatusRow
from api.auth import upsert_user
from api.plans import parse_plan, shipped_plan_text
from chuangzheng.sample_evidence import sample_evidence
from chuangzheng.telemetry import temporal_runtime
from domain.phases import Phase
from tests.api.conftest import PASSWORD, ROSTER_CSV, USERS, free_port, token
from tests.workflows.support import org_plan, organisation, start_campaign, status
from worker import build_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]


async def test_a_worker_serves_sdk_metrics_for_prometheus_while_it_works(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    port = free_port()
    client = await Client.connect(
        dev_server.client.service_client.config.target_host,
        runtime=temporal_runtime(metrics_address=f"127.0.0.1:{port}"),
        data_converter=dev_server.client.data_converter,
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    task_queue = f"metrics-{uuid.uuid4()}"
    plan = org_plan(organisation(), datetime.now(UTC), round_id=f"r-metrics-{uuid.uuid4().hex}")
    async with build_worker(client, task_queue=task_queue, sessions=sessions):
        handle = await start_campaign(client, task_queue, plan)
        assert (await status(handle)).organisation.id == plan.organisation.id

        async def scrape() -> str:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/metrics")).text

        deadline = time.monotonic() + 60
        text = await scrape()
        # The first status row is written by the recording activity: wait for it.
        while "record_outbox" not in text or "workflow_task_execution_latency" not in text:
            assert time.monotonic() < deadline, text[-2000:]
            await asyncio.sleep(0.5)
            text = await scrape()
        await handle.terminate("test over")
    engine.dispose()

    assert f'task_queue="{task_queue}"' in text
    assert "temporal_workflow_task_execution_latency_seconds" in text  # seconds, not ms
    assert 'operation="StartWorkflowExecution"' in text and "temporal_request_total" in text
    assert "temporal_sticky_cache_size" in text
    with sessions() as session:
        row = session.scalar(
            select(CampaignStatusRow).where(CampaignStatusRow.org_id == plan.organisation.id)
        )
    assert row is not None


class _OtlpReceiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint: keeps every span it is sent (name, ids, links)."""

    spans: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes
                 if a.key == "service.name"),
                "",
            )  # fmt: skip
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "trace": span.trace_id.hex(),
                            "span": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "service": service,
                            "links": [(link.trace_id.hex(), link.span_id.hex())
                                      for link in span.links],
                        }
                    )  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    spans: list[dict[str, Any]] = []
    handler = type("Receiver", (_OtlpReceiver,), {"spans": spans})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", spans
    finally:
        server.shutdown()


def _start(command: str, environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``chuangzheng <command>`` as production runs it (its own process: OpenTelemetry's
    tracer provider is set once per process, and this test session must export nowhere)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "chuangzheng"), command],
        env=environ,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # a clean stop flushes the spans still batched
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _traceparent() -> tuple[str, str]:
    """A W3C ``traceparent`` a traced caller (a gateway) would send, and its trace id."""
    trace_id = uuid.uuid4().hex
    return f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", trace_id


async def test_a_request_is_one_trace_through_temporal_to_the_activities(
    dev_server: WorkflowEnvironment,
    otlp_receiver: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """The API and a worker as separate processes (``chuangzheng api``, ``chuangzheng
    worker``), exporting to a real OTLP/HTTP receiver. The county office's kick-off request
    is one trace: its HTTP span, the round workflow, the fan-out activity, each
    organisation's workflow, its recording activity, and the secretary's Update handled in
    that workflow. The submission request's own trace holds its HTTP span and the client's
    ``StartWorkflowUpdate``, which the workflow's ``HandleUpdate`` span links to."""
    endpoint, spans = otlp_receiver
    database_url = f"sqlite:///{tmp_path / 'readmodel.db'}"
    engine = make_engine(database_url)
    create_schema(engine)
    roster = read_roster_text(ROSTER_CSV)
    with session_factory(engine).begin() as session:
        store_roster(session, roster)
        for username, (role, key) in USERS.items():
            upsert_user(session, username=username, display_name=username, password=PASSWORD,
                        role=role, scope_key=key)  # fmt: skip
    engine.dispose()
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CZ_")} | {
        "CZ_ENVIRONMENT": "test",
        "CZ_SECRET_KEY": f"test-{uuid.uuid4()}",
        "CZ_DATA_DIR": str(tmp_path / "data"),
        "CZ_DATABASE_URL": database_url,
        "CZ_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "CZ_TASK_QUEUE": f"traces-{uuid.uuid4().hex}",
        "CZ_OTLP_ENDPOINT": endpoint,
        "CZ_API_PORT": str(port),
        "CZ_LOG_FORMAT": "json",
    }
    worker = _start("worker", environ, tmp_path / "worker.log")
    api = _start("api", environ, tmp_path / "api.log")
    base_url = f"http://127.0.0.1:{port}"
    round_id = f"r-trace-{uuid.uuid4().hex[:8]}"
    kickoff_route = "POST /api/v1/rounds/{round_id}/kickoff"
    submit_route = "POST /api/v1/rounds/{round_id}/organisations/{org_id}/submissions"
    kickoff_parent, kickoff_trace = _traceparent()
    submit_parent, submit_trace = _traceparent()
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            deadline = time.monotonic() + 90
            while True:  # the API answers once its lifespan has connected to Temporal
                assert api.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API did not start"
                await asyncio.sleep(0.3)
            county = await token(http, "county")
            created = await http.post(
                "/api/v1/rounds",
                json={"round_id": round_id, "plan_id": "demo", "round_plan_id": "demo"},
                headers=county,
            )
            assert created.status_code == 201, created.text
            kicked = await http.post(
                f"/api/v1/rounds/{round_id}/kickoff",
                headers=county | {"traceparent": kickoff_parent},
            )
            assert kicked.status_code == 200, kicked.text
            secretary = await token(http, "sec-a")
            base = f"/api/v1/rounds/{round_id}/organisations/org-a"
            for _ in range(200):
                status = await http.get(f"{base}/status", headers=secretary)
                if status.status_code == 200:
                    break
                await asyncio.sleep(0.3)
            assert status.status_code == 200, status.text
            state = status.json()["state"]
            phase = state["phases"][0]
            step = next(s for s in phase["steps"] if s["required"])
            plan = parse_plan(shipped_plan_text("demo"))
            step_plan = next(
                s for s in plan.round("demo").phase(Phase(state["phase"])).steps
                if s.id == step["step_id"]
            )  # fmt: skip
            values = sample_evidence(
                step_plan,
                next(o for o in roster.organisations if o.id == "org-a"),
                opens_at=datetime.fromisoformat(phase["opens_at"]),
                deadline=datetime.fromisoformat(phase["deadline"]),
                now=datetime.fromisoformat(phase["opens_at"]),
            )
            submitted = await http.post(
                f"{base}/submissions",
                json={"step_id": step["step_id"], "values": values},
                headers=secretary | {"traceparent": submit_parent},
            )
            assert submitted.status_code == 200, submitted.text

        def names(trace_id: str, service: str | None = None) -> set[str]:
            return {
                s["name"] for s in spans
                if s["trace"] == trace_id and service in (None, s["service"])
            }  # fmt: skip

        # Spans leave in batches (every few seconds): wait for the last ones of both traces.
        deadline = time.monotonic() + 60
        while "HandleUpdate:submit_evidence" not in names(kickoff_trace) or not {
            submit_route,
            "StartWorkflowUpdate:submit_evidence",
        } <= names(submit_trace):
            assert time.monotonic() < deadline, (
                sorted(names(kickoff_trace)),
                sorted(names(submit_trace)),
            )
            await asyncio.sleep(0.5)
    finally:
        _stop(api)
        _stop(worker)

    # The kick-off request's trace: the API, the round, the fan-out, the organisations'
    # workflows and activities, and the secretary's Update.
    assert kickoff_route in names(kickoff_trace, "chuangzheng-api")
    assert "StartWorkflow:CampaignRound" in names(kickoff_trace, "chuangzheng-api")
    in_worker = names(kickoff_trace, "chuangzheng-worker")
    assert {
        "RunWorkflow:CampaignRound",
        "RunActivity:start_round_organisations",
        "StartWorkflow:OrganisationCampaignWorkflow",
        "RunWorkflow:OrganisationCampaignWorkflow",
        "RunActivity:record_outbox",
        "ValidateUpdate:submit_evidence",
        "HandleUpdate:submit_evidence",
    } <= in_worker, sorted(in_worker)
    # The submission request's trace: its HTTP span and the client's Update call beneath it
    # (through the API's own spans in between); the workflow's HandleUpdate links to it.
    submit = {s["span"]: s for s in spans if s["trace"] == submit_trace}
    http_span = next(s for s in submit.values() if s["name"] == submit_route)
    update_call = next(
        s for s in submit.values() if s["name"] == "StartWorkflowUpdate:submit_evidence"
    )
    ancestors, parent = [], update_call["parent"]
    while parent in submit:
        ancestors.append(parent)
        parent = submit[parent]["parent"]
    assert http_span["span"] in ancestors, sorted(s["name"] for s in submit.values())
    assert http_span["service"] == update_call["service"] == "chuangzheng-api"
    handled = next(
        s for s in spans
        if s["trace"] == kickoff_trace and s["name"] == "HandleUpdate:submit_evidence"
    )  # fmt: skip
    assert (submit_trace, update_call["span"]) in handled["links"]
    # One server span per request, named by its route template: never a raw path (ids,
    # ballot tokens), and not a second one from FastAPI's own telemetry.
    assert all(round_id not in s["name"] for s in spans)
    assert [s["name"] for s in submit.values()].count(submit_route) == 1
    # Only the two processes exported (the test session itself exports nowhere).
    assert {s["service"] for s in spans} == {"chuangzheng-api", "chuangzheng-worker"}
