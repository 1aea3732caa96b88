"""The FastAPI application: ``app`` for ``uvicorn api.main:app``, :func:`create_app` for
tests and other assemblies. OpenAPI at ``/docs``.

Settings are read when the app starts (lifespan), never at import time; the lifespan opens
the database (creating missing tables; production runs ``alembic upgrade head`` first) and
connects to Temporal unless a client is handed in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from activities.db import create_schema, make_engine, session_factory
from api.errors import install_error_handlers
from api.public import ballots as public_ballots
from api.public import commitments as public_commitments
from api.public import honours as public_honours
from api.public import log_redaction
from api.routers import (
    actions,
    commendation,
    commitment_ledger,
    commitments,
    deliveries,
    evaluations,
    files,
    honours,
    members,
    notices,
    organisations,
    reports,
    rounds,
    supervision,
    users,
)
from api.ui import routes as ui_routes
from chuangzheng.settings import Settings, get_settings
from chuangzheng.temporal_server import data_converter


def create_app(settings: Settings | None = None, *, temporal: Client | None = None) -> FastAPI:
    """Assemble the API for ``settings`` (the process settings when None)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()  # refuses the default secret outside development
        engine = make_engine(resolved.database_url)
        create_schema(engine)
        app.state.settings = resolved
        app.state.sessions = session_factory(engine)
        app.state.temporal = temporal or await Client.connect(
            resolved.temporal_address,
            namespace=resolved.temporal_namespace,
            data_converter=data_converter(),
        )
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="创先争优活动管理 API",
        version="1",
        docs_url="/docs",
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    log_redaction.install()  # ballot tokens never reach the access log
    for module in (
        users,
        rounds,
        organisations,
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
        ui_routes,
    ):
        app.include_router(module.router)
    return app


app = create_app()
