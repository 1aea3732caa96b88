"""Metrics and traces over the real things: a worker's Prometheus endpoint scraped over HTTP
while it runs an organisation's workflow on the dev server, and spans received by a real
OTLP/HTTP receiver from a worker process and its client.

The traces test runs its worker in a subprocess: OpenTelemetry's tracer provider can be set
once per process, and this one (the test session) must keep exporting nowhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.tables import CampaignStatusRow
from chuangzheng.telemetry import temporal_runtime
from tests.api.conftest import free_port
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
        while "record_events" not in text or "workflow_task_execution_latency" not in text:
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
    """An OTLP/HTTP traces endpoint: keeps every span it is sent."""

    spans: ClassVar[list[dict[str, str]]] = []

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
                        {"name": span.name, "trace": span.trace_id.hex(), "service": service}
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    spans: ClassVar[list[dict[str, str]]] = []
    handler = type("Receiver", (_OtlpReceiver,), {"spans": spans})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", spans
    finally:
        server.shutdown()


# The worker process of the traces test: the project's bootstrap (connect_temporal with the
# settings' interceptors) and worker, one organisation started inside a request-like span.
_PROBE = """
import asyncio, json, sys
from datetime import UTC, datetime
from opentelemetry import trace
from sqlalchemy import select
from activities.db import create_schema, make_engine, session_factory
from activities.tables import CampaignStatusRow
from chuangzheng.bootstrap import connect_temporal
from chuangzheng.settings import Settings
from chuangzheng.telemetry import configure_tracing, flush_traces
from tests.workflows.support import org_plan, organisation, start_campaign, status
from worker import build_worker

async def main(args):
    settings = Settings(**args)
    assert configure_tracing(settings, "chuangzheng-worker")
    client = await connect_temporal(settings)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    sessions = session_factory(engine)
    plan = org_plan(organisation(), datetime.now(UTC), round_id=args["task_queue"])
    async with build_worker(client, task_queue=settings.task_queue, sessions=sessions):
        with trace.get_tracer("probe").start_as_current_span("POST probe-request") as span:
            handle = await start_campaign(client, settings.task_queue, plan)
            await status(handle)
            trace_id = format(span.get_span_context().trace_id, "032x")
        for _ in range(240):
            with sessions() as session:
                if session.scalar(select(CampaignStatusRow.org_id)) is not None:
                    break
            await asyncio.sleep(0.25)
        await handle.terminate("probe over")
    flush_traces()
    print(json.dumps({"trace": trace_id}))

asyncio.run(main(json.loads(sys.argv[1])))
"""


async def test_a_submission_is_one_trace_from_the_caller_to_the_recording_activity(
    dev_server: WorkflowEnvironment,
    otlp_receiver: tuple[str, list[dict[str, str]]],
    tmp_path: Path,
) -> None:
    endpoint, spans = otlp_receiver
    args = {
        "environment": "test",
        "data_dir": str(tmp_path),
        "database_url": f"sqlite:///{tmp_path / 'readmodel.db'}",
        "temporal_address": dev_server.client.service_client.config.target_host,
        "task_queue": f"traces-{uuid.uuid4().hex}",
        "secret_key": f"test-{uuid.uuid4()}",
        "otlp_endpoint": endpoint,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CZ_")}
    probe = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    trace_id = json.loads(probe.stdout.strip().splitlines()[-1])["trace"]

    in_trace = {s["name"] for s in spans if s["trace"] == trace_id}
    assert "POST probe-request" in in_trace
    assert "StartWorkflow:OrganisationCampaignWorkflow" in in_trace
    assert "RunWorkflow:OrganisationCampaignWorkflow" in in_trace
    assert any(name.startswith("RunActivity:record_events") for name in in_trace), in_trace
    assert {s["service"] for s in spans} == {"chuangzheng-worker"}
