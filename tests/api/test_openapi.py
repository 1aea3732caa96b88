"""Every operation of ``/openapi.json`` documents the error statuses its route can return,
derived from what the route depends on: a login (401/403), a body (413/422), Temporal (503),
an upload (413/415), and the database or Temporal unavailable (503, every route). No server
needed: the schema is built without the app's lifespan."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, UploadFile
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.deps import get_current_user
from api.main import create_app
from api.ui.session import ui_user
from chuangzheng.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
_PATH_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(
        environment="test",
        data_dir=tmp_path_factory.mktemp("openapi"),
        database_url=f"sqlite:///{tmp_path_factory.mktemp('openapi-db') / 'api.db'}",
        secret_key=f"test-{uuid.uuid4()}",
    )
    return create_app(settings)


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """The documented routes with their full paths (FastAPI keeps included routers as
    branches: their routes are reached through the branch's effective contexts)."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            if route.include_in_schema:
                yield route.path_format, route
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                original = context.original_route
                if isinstance(original, APIRoute) and context.include_in_schema:
                    yield context.path, original


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _uploads(route: APIRoute) -> bool:
    return any(
        UploadFile in (p.field_info.annotation, *getattr(p.field_info.annotation, "__args__", ()))
        for p in route.dependant.body_params
    )


def expected(route: APIRoute) -> set[int]:
    """The statuses ``route`` can answer with, from its dependencies."""
    calls = set(_calls(route.dependant))
    statuses: set[int] = set()
    if get_current_user in calls or ui_user in calls:
        statuses |= {401, 403}
    if route.dependant.body_params:
        statuses |= {413, 422}
    if route.dependant.query_params or route.dependant.path_params:
        statuses |= {422}
    if _PATH_PARAMETER.search(route.path):
        statuses |= {404}  # what the path names may not exist, or not for this caller
    # Every route touches the database, which can be locked or unreachable: 503 for all
    # (and for Temporal's routes, Temporal's 503 besides).
    statuses |= {503}
    if _uploads(route):
        statuses |= {413, 415, 422}
    return statuses


async def test_every_operation_lists_the_statuses_its_route_returns(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        schema = (await client.get("/openapi.json")).json()
    missing: dict[str, list[int]] = {}
    checked = 0
    for path, route in api_routes(app):
        for method in (route.methods or set()) - {"HEAD"}:
            operation = schema["paths"][path.replace(":path}", "}")][method.lower()]
            documented = {int(code) for code in operation["responses"] if code.isdigit()}
            absent = sorted(expected(route) - documented)
            if absent:
                missing[f"{method} {path}"] = absent
            checked += 1
    assert checked > 50
    assert not missing, missing


async def test_errors_are_documented_with_the_common_body(app: FastAPI) -> None:
    schema = app.openapi()
    operation = schema["paths"]["/api/v1/rounds/{round_id}/organisations/{org_id}/submissions"]
    responses = operation["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "Retry-After" in responses["503"]["headers"]


JSON = "application/json"


def _file_route(route: APIRoute) -> bool:
    """A route that answers with a file or a page: its ``response_class`` is not JSON (every
    other route is a JSON one and must declare its model, so none slips between the two)."""
    response_class = route.response_class
    if isinstance(response_class, DefaultPlaceholder):
        response_class = response_class.value
    return not issubclass(response_class, JSONResponse)


def _typed(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether ``schema`` names its fields: a model, a list of models, or a union of them
    (``{}`` and a bare ``object``, i.e. ``Any`` or ``dict[str, Any]``, are not)."""
    if "$ref" in schema:
        return _typed(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "items" in schema:
        return _typed(schema["items"], components)
    if "anyOf" in schema or "oneOf" in schema:
        either = schema.get("anyOf") or schema.get("oneOf") or []
        options = [s for s in either if s != {"type": "null"}]
        return bool(options) and all(_typed(s, components) for s in options)
    return bool(schema.get("properties"))


async def test_every_json_operation_declares_its_response_model(app: FastAPI) -> None:
    schema = app.openapi()
    components = schema["components"]["schemas"]
    untyped: list[str] = []
    checked = 0
    for path, route in api_routes(app):
        module = route.endpoint.__module__
        if not path.startswith("/api/v1/") or _file_route(route):
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            responses = schema["paths"][path.replace(":path}", "}")][method.lower()]["responses"]
            success = responses.get(str(route.status_code or 200), {})
            body = success.get("content", {}).get(JSON, {}).get("schema", {})
            if not _typed(body, components):
                untyped.append(f"{method} {path} ({module})")
            checked += 1
    assert checked > 40
    assert not untyped, untyped


async def test_every_file_operation_declares_its_media_type(app: FastAPI) -> None:
    schema = app.openapi()
    undeclared: list[str] = []
    files = 0
    for path, route in api_routes(app):
        if not path.startswith("/api/v1/") or not _file_route(route):
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            responses = schema["paths"][path.replace(":path}", "}")][method.lower()]["responses"]
            media = set(responses.get(str(route.status_code or 200), {}).get("content", {}))
            if not media or JSON in media:
                undeclared.append(f"{method} {path}: {sorted(media)}")
            files += 1
    assert files >= 3
    assert not undeclared, undeclared


async def test_every_path_parameter_is_declared(app: FastAPI) -> None:
    schema = app.openapi()
    undeclared: dict[str, list[str]] = {}
    checked = 0
    for path, route in api_routes(app):
        template = path.replace(":path}", "}")
        for method in (route.methods or set()) - {"HEAD"}:
            operation = schema["paths"][template][method.lower()]
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            absent = sorted(set(_PATH_PARAMETER.findall(path)) - declared)
            if absent:
                undeclared[f"{method} {path}"] = absent
            checked += 1
    assert checked > 50
    assert not undeclared, undeclared
