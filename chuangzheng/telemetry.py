"""Metrics and traces for the engineers who operate the service.

- **The worker's metrics** are the Temporal SDK's own (task latencies, slots, sticky cache,
  activity failures…) plus the project's, exported by the SDK's Rust runtime on a Prometheus
  endpoint (``CZ_METRICS_ADDRESS``, e.g. ``0.0.0.0:9464``): :func:`install_temporal_runtime`.
  Activities add their counters to the same meter (``activity.metric_meter()``), so one scrape
  target per worker process carries everything.
- **The API's metrics** are served at ``/metrics`` to a scraper presenting the bearer token
  ``CZ_METRICS_TOKEN`` (no token configured: no endpoint). They count requests by route
  template and status, time them, and read the county's state from the read model
  (organisations of running rounds by light, notices recorded), cached for a few seconds so a
  scrape never costs more than two small queries.
- **Traces** go to an OpenTelemetry collector over OTLP/HTTP (``CZ_OTLP_ENDPOINT``) when it is
  set: a span per API request, and Temporal's tracing interceptor on the client carries the
  context through workflow starts, Updates, workflows and activities. A workflow's spans,
  its Updates' included, belong to the trace that started it (the kick-off request's, from
  the HTTP request through the round, each organisation's workflow and their activities);
  an Update's ``HandleUpdate`` span there links to the request that sent it, whose own trace
  holds the HTTP span and the client's ``StartWorkflowUpdate`` (the SDK's interceptor: a
  workflow's spans are replay-safe only in one trace).

Nothing here is on by default; each piece is one setting (``docs/production.md``).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from chuangzheng.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric
    from sqlalchemy.orm import Session, sessionmaker
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from temporalio.client import Interceptor
    from temporalio.runtime import Runtime

    from chuangzheng.services.county_figures import CountyFigures

log = logging.getLogger(__name__)

#: How long the read model's figures are reused between scrapes.
READ_MODEL_TTL_SECONDS = 10.0

#: Routes the request metrics leave out: the scraper's and the orchestrator's own calls.
UNCOUNTED_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})

_tracing_lock = threading.Lock()
_tracing_endpoint: str | None = None


# ----- the Temporal runtime: core logs and the worker's Prometheus endpoint -----------------
def temporal_runtime(*, metrics_address: str | None, core_log_level: str = "WARN") -> Runtime:
    """A Temporal runtime whose core logs go through the stdlib logger ``temporalio.core``
    (rendered like every other record) and which, given ``metrics_address`` (host:port),
    serves every SDK and project metric there for Prometheus."""
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        PrometheusConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    metrics = (
        # Prometheus conventions: durations in seconds, counters ending in _total.
        PrometheusConfig(
            bind_address=metrics_address,
            durations_as_seconds=True,
            counters_total_suffix=True,
            unit_suffix=True,
        )
        if metrics_address
        else None
    )
    telemetry = TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level=core_log_level, other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
        ),
        metrics=metrics,
    )
    return Runtime(telemetry=telemetry)


def install_temporal_runtime(settings: Settings, *, metrics: bool = True) -> None:
    """Make the process's default runtime :func:`temporal_runtime` for ``settings``. Call once
    per process before the first client or worker exists (the default is fixed by then).
    ``metrics=False`` for processes that must not bind the metrics port (the API: only the
    worker serves ``CZ_METRICS_ADDRESS``)."""
    from temporalio.runtime import Runtime

    address = settings.metrics_address if metrics else None
    Runtime.set_default(temporal_runtime(metrics_address=address), error_if_already_set=False)


# ----- traces --------------------------------------------------------------------------------
def configure_tracing(settings: Settings, service_name: str) -> bool:
    """Export spans to ``CZ_OTLP_ENDPOINT`` over OTLP/HTTP (batched, in the background), once
    per process. False when no endpoint is configured: spans then go nowhere."""
    global _tracing_endpoint
    endpoint = settings.otlp_endpoint
    if not endpoint:
        return False
    with _tracing_lock:
        if _tracing_endpoint is not None:
            return True
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
        _tracing_endpoint = endpoint
    return True


def flush_traces(timeout_seconds: float = 5.0) -> None:
    """Send the spans still buffered (at shutdown, and in tests)."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(int(timeout_seconds * 1000))


def client_interceptors(settings: Settings) -> Sequence[Interceptor]:
    """The Temporal client's interceptors: the tracing one when traces are exported (the
    worker built on that client inherits it, so workflows and activities are traced too)."""
    if not settings.otlp_endpoint:
        return ()
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return (TracingInterceptor(),)


# ----- the API's /metrics ----------------------------------------------------------------------
class ReadModelCollector:
    """The county's state as gauges, read from the read model at most every
    :data:`READ_MODEL_TTL_SECONDS` (a scrape every few seconds from several Prometheus
    replicas must not become a load of its own)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._figures: CountyFigures | None = None

    def _current(self) -> CountyFigures | None:
        from chuangzheng.services.county_figures import county_figures

        with self._lock:
            if time.monotonic() - self._read_at > READ_MODEL_TTL_SECONDS:
                try:
                    with self._sessions() as session:
                        self._figures = county_figures(session)
                    self._read_at = time.monotonic()
                except Exception:  # a scrape must answer even when the database does not
                    log.warning("read model metrics unavailable", exc_info=True)
            return self._figures

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        figures = self._current()
        if figures is None:  # never read: no figures rather than zeros that look real
            return
        gauge = GaugeMetricFamily(
            "chuangzheng_organisations",
            "Organisations of running rounds, by light (read model)",
            labels=["light"],
        )
        for light, count in figures.lights.items():
            gauge.add_metric([light], count)
        yield gauge
        yield GaugeMetricFamily(
            "chuangzheng_notices_recorded",
            "Notices recorded for running rounds (read model)",
            value=figures.notices,
        )
        yield CounterMetricFamily(
            "chuangzheng_notices_sent_external",
            "Notices delivered on external channels (e-mail, DingTalk…)",
            value=figures.sent,
        )
        yield GaugeMetricFamily(
            "chuangzheng_notice_delivery_errors",
            "External deliveries that failed or whose outcome is unknown",
            value=figures.delivery_errors,
        )


class ApiMetrics:
    """The API's registry: request counts and durations by route template, and the read
    model's gauges. One per app (tests build several apps in one process)."""

    def __init__(self, sessions: sessionmaker[Session] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry: CollectorRegistry = CollectorRegistry()
        self.requests = Counter(
            "chuangzheng_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "chuangzheng_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        if sessions is not None:
            self.registry.register(ReadModelCollector(sessions))

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def scrape_allowed(settings: Settings, authorization: str | None) -> bool:
    """Whether a scrape presents the configured bearer token (compared in constant time)."""
    token = settings.metrics_token
    if not token or not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token)


def route_template(scope: Scope) -> str:
    """The matched route's template (``/api/v1/rounds/{round_id}``), never the raw path: ids
    and tokens must not become label values (unbounded, and a ballot token is a secret).
    ``other`` for whatever is not an API route."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    # FastAPI names only its API routes in the scope; the OpenAPI document, /docs, static
    # files and unknown paths are counted together.
    return path if isinstance(path, str) else "other"


class RequestTelemetry:
    """ASGI middleware: counts and times every HTTP request by route template, and, when
    traces are exported, opens the request's server span (the Temporal calls the request
    makes become its children through the client's tracing interceptor).

    A request that arrives with W3C trace context (``traceparent``, from a gateway or a
    traced client) continues that trace; without one the span starts a new trace."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics or _app_metrics(scope)
        method = scope.get("method", "GET")
        status = 500
        started = time.perf_counter()
        recorded = False

        def record() -> str:
            nonlocal recorded
            route = route_template(scope)
            if metrics is not None and not recorded and route not in UNCOUNTED_ROUTES:
                metrics.requests.labels(method, route, str(status)).inc()
                metrics.duration.labels(method, route).observe(time.perf_counter() - started)
            recorded = True
            return route

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Before the last byte leaves: a client that saw the answer finds it counted.
                record()
            await send(message)

        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind

        tracer = trace.get_tracer("chuangzheng.api")
        parent = propagate.extract(_trace_headers(scope))
        with tracer.start_as_current_span(
            f"{method} request", context=parent, kind=SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                route = record()  # an answer never sent (an exception) counts as a 500
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)


#: The request headers that carry trace context (W3C Trace Context and Baggage): only these
#: are handed to the propagator, never cookies or the Authorization header.
TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


def _trace_headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").lower()
        if name in TRACE_HEADERS:
            headers[name] = raw_value.decode("latin-1")
    return headers


def _app_metrics(scope: Scope) -> ApiMetrics | None:
    app: Any = scope.get("app")
    state = getattr(app, "state", None)
    metrics = getattr(state, "metrics", None)
    return metrics if isinstance(metrics, ApiMetrics) else None
