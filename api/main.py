"""The FastAPI application: ``app`` for ``uvicorn api.main:app``, :func:`create_app` for
tests and other assemblies. OpenAPI at ``/docs``.

Settings are read when the app starts (lifespan), never at import time; the lifespan opens
the database and connects to Temporal unless a client is handed in. The schema is the
migrations' (``chuangzheng migrate``): the app never creates or alters tables on a database
they manage, and refuses to start on one that is not at their head
(``chuangzheng.bootstrap.ensure_schema``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI
from temporalio.client import Client

from api.blocking import install_loop_guard, shutdown_parse_pool
from api.errors import install_error_handlers
from api.housekeeping import keep_house
from api.limits import BodySizeLimit
from api.public import ballots as public_ballots
from api.public import commitments as public_commitments
from api.public import honours as public_honours
from api.public import log_redaction
from api.responses import document_unavailable
from api.routers import (
    accounts,
    actions,
    audit,
    briefings,
    codec,
    commendation,
    commitment_ledger,
    commitments,
    contact_points,
    counties,
    deliveries,
    evaluations,
    files,
    guidance_groups,
    health,
    honours,
    inspections,
    members,
    metrics,
    notices,
    organisations,
    plan_versions,
    rectification_orders,
    reports,
    roster,
    rounds,
    supervision,
    supervision_records,
    users,
    what_if,
)
from api.security import SecurityMiddleware, refuse_nul
from api.tenancy import api_county_guard
from api.ui import routes as ui_routes
from chuangzheng.bootstrap import open_services
from chuangzheng.settings import Settings
from chuangzheng.telemetry import ApiMetrics, RequestTelemetry, configure_tracing


def create_app(settings: Settings | None = None, *, temporal: Client | None = None) -> FastAPI:
    """Assemble the API for ``settings`` (the process settings when None)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The one bootstrap (chuangzheng.bootstrap): settings (refusing the default secret
        # outside development), the read model (at the migrations' head, else refused), the
        # Temporal client and the notifier.
        async with open_services(settings, temporal=temporal, temporal_required=False) as services:
            configure_tracing(services.settings, "chuangzheng-api")
            app.state.metrics = ApiMetrics(services.sessions)
            app.state.services = services
            app.state.settings = services.settings
            app.state.sessions = services.sessions
            app.state.temporal = services.temporal
            # The threadpool rule (api.blocking): SQL on the event loop fails under test.
            install_loop_guard(services.engine, strict=services.settings.environment == "test")
            retention = timedelta(hours=services.settings.idempotency_retention_hours)
            throttle_window = timedelta(minutes=services.settings.signin_window_minutes)
            sweeper = asyncio.create_task(keep_house(services.sessions, retention, throttle_window))
            try:
                yield
            finally:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
                shutdown_parse_pool()  # the upload parsers' processes stop with the API

    app = FastAPI(
        title="创先争优活动管理 API",
        version="1",
        docs_url="/docs",
        openapi_url="/openapi.json",
        lifespan=lifespan,
        # NUL in a body is refused for every route (api.security.refuse_nul).
        dependencies=[Depends(refuse_nul)],
        # FastAPI's own OpenTelemetry (0.16x: on once a tracer provider exists) would add a
        # second server span carrying the raw path and query, ballot tokens included: the
        # project's RequestTelemetry below names spans and metrics by route template only.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    # Innermost: sees the matched route's template (metrics and the request's span).
    app.add_middleware(RequestTelemetry)
    app.add_middleware(BodySizeLimit)  # 413 before an oversized body is read whole
    # Outermost: headers on every answer (413s included), cross-site page posts refused.
    app.add_middleware(SecurityMiddleware)
    log_redaction.install()  # ballot tokens never reach the access log
    for module in ROUTERS:
        # Many counties (api.tenancy): the routers of signed-in callers check the county of
        # the round and organisation a request names, and refuse writes from above a county.
        guard = [Depends(api_county_guard)] if module in _COUNTY_GUARDED else []
        app.include_router(module.router, dependencies=guard)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_unavailable(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


#: Every router of the app, in the order they are included.
ROUTERS = (
    users,
    accounts,
    rounds,
    plan_versions,
    organisations,
    roster,
    guidance_groups,
    audit,
    actions,
    files,
    supervision,
    notices,
    reports,
    deliveries,
    members,
    commitments,
    commitment_ledger,
    public_commitments,
    commendation,
    honours,
    public_honours,
    evaluations,
    public_ballots,
    health,
    metrics,
    codec,
    rectification_orders,
    inspections,
    supervision_records,
    briefings,
    contact_points,
    counties,
    what_if,
    ui_routes,
)

#: The routers the county guard leaves alone: sign-in and the caller's own account (users),
#: activation and account administration (accounts: it keeps to the administrator's county
#: in its service), the public pages (no signed-in caller), health, metrics and the codec
#: (operators', no county), and the pages (``api.ui.routes`` guards each page router itself).
#: Every other router is guarded, so a new one is unless it is named here.
_NOT_COUNTY_GUARDED = (
    users,
    accounts,
    public_commitments,
    public_honours,
    public_ballots,
    health,
    metrics,
    codec,
    ui_routes,
)

_COUNTY_GUARDED = tuple(m for m in ROUTERS if m not in _NOT_COUNTY_GUARDED)


app = create_app()
