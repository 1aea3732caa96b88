"""Liveness and readiness for orchestrators (Docker healthchecks, Kubernetes probes).

``/healthz``: the process answers (restart it if not). ``/readyz``: it can serve, i.e. the
read model answers a query and the Temporal frontend answers a health check, each within a
short bound; otherwise 503 naming what is not ready, so a load balancer takes the replica out
of rotation instead of letting requests time out. Neither needs signing in nor reveals more
than ok / not ok; both stay out of the OpenAPI document and the request metrics' routes.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import SessionsDep, TemporalClientDep

router = APIRouter()

#: How long each dependency may take to answer a readiness check.
READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    """The process is alive (nothing else is checked: a restart would not fix a database)."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get("/readyz", include_in_schema=False)
async def readyz(sessions: SessionsDep, temporal: TemporalClientDep) -> JSONResponse:
    """The database and Temporal both answer within :data:`READY_TIMEOUT_SECONDS`."""

    def query_database() -> None:
        with sessions() as session:
            session.execute(text("SELECT 1"))

    async def database() -> bool:
        try:
            await asyncio.wait_for(run_in_threadpool(query_database), READY_TIMEOUT_SECONDS)
            return True
        except Exception:
            return False

    async def temporal_ready() -> bool:
        try:
            return await asyncio.wait_for(
                temporal.service_client.check_health(), READY_TIMEOUT_SECONDS
            )
        except Exception:
            return False

    db_ok, temporal_ok = await asyncio.gather(database(), temporal_ready())
    checks = {"database": "ok" if db_ok else "unavailable"}
    checks["temporal"] = "ok" if temporal_ok else "unavailable"
    ready = db_ok and temporal_ok
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"} | ({} if ready else {"Retry-After": "5"}),
    )
