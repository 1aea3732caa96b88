"""``GET /metrics``: the API's Prometheus metrics (``chuangzheng.telemetry``) for a scraper
holding the bearer token ``CZ_METRICS_TOKEN``. Without the token configured, or without it
presented, the endpoint does not exist (404): counts of a county's organisations are not
public. Not in the OpenAPI document: it is for the monitoring system, not API clients.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.deps import SettingsDep
from api.errors import ApiError
from chuangzheng.telemetry import ApiMetrics, scrape_allowed

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """The text exposition format (a thread-pool route: reading the figures may query)."""
    registry: ApiMetrics | None = getattr(request.app.state, "metrics", None)
    if registry is None or not scrape_allowed(settings, request.headers.get("authorization")):
        raise ApiError(404, "not_found", "资源不存在")
    body, content_type = registry.exposition()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
