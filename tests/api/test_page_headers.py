"""Security headers and the cross-site check on every page (issue 13, "what to keep in make
test"), table-driven from the app's own route list: a page added later is checked without
anyone adding it here.

Every GET of every page (everything outside ``/api/``: the dashboard under ``/ui``, the
public pages, the ballot, the notice links, the API docs), asked signed in and anonymously,
answers with the headers of :mod:`api.security`: a Content-Security-Policy with
``default-src 'self'`` and ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``,
``nosniff``, a Referrer-Policy (``no-referrer`` on ballot pages) and ``no-store`` on the
dashboard's pages and the ballot. Every state-changing page route refuses a cross-site form
post (a foreign ``Origin``; no ``Origin`` and a foreign ``Referer``; neither; ``Origin:
null``) with the 403 page before the route runs, and a same-origin post is never refused by
that check. The ballot's post is the one exemption (:data:`api.security.CSRF_EXEMPT`: its
form carries the one-time token itself), and it is checked to stay the only one.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from api.main import create_app
from api.security import CSRF_EXEMPT, CSRF_MESSAGE, SAFE_METHODS
from chuangzheng.settings import Settings
from tests.api.conftest import PASSWORD, Stack, start_demo_round, token
from tests.api.test_evaluation_guards import reach_public_evaluation

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.one_database(
        "sqlite",
        why=(
            "security headers and the cross-site check are the app's middleware, the same "
            "whatever database answers behind it"
        ),
    ),
]
FOREIGN = "https://evil.example"
TOKEN_IN_URL = re.compile(r"/ballot/([A-Za-z0-9_\-]{22})\b")
DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class PageRoute:
    """One method of one page path, as the app routes it."""

    method: str
    path: str


def page_routes() -> list[PageRoute]:
    """Every route of the app outside ``/api/`` (FastAPI keeps included routers as branches;
    their routes are reached through the branch's effective contexts)."""
    settings = Settings(
        environment="test",
        data_dir="/nonexistent-h7",
        database_url="sqlite://",
        secret_key=f"test-{uuid.uuid4()}",
    )
    app = create_app(settings)

    def paths() -> Iterator[tuple[str, set[str]]]:
        for route in app.routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if contexts is None:
                yield route.path, set(getattr(route, "methods", None) or ())  # type: ignore[attr-defined]
                continue
            for context in contexts():
                yield context.path, set(getattr(context.original_route, "methods", None) or ())

    found = {
        PageRoute(method, path)
        for path, methods in paths()
        if not path.startswith("/api/")
        for method in methods - {"HEAD"}
    }
    return sorted(found, key=lambda r: (r.path, r.method))


ROUTES = page_routes()
GETS = [r for r in ROUTES if r.method == "GET"]
POSTS = [r for r in ROUTES if r.method not in SAFE_METHODS]


@dataclass(frozen=True)
class World:
    """The objects the paths name: a round, an uploaded file, a ballot."""

    round_id: str
    sha256: str
    token: str
    evaluation_id: str


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(stack: Stack) -> World:
    rid = await start_demo_round(stack, f"pages-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        await reach_public_evaluation(http, rid, ("org-b",))  # where evaluations are opened
        secretary = await token(http, "sec-a")
        uploaded = await http.post(
            f"/api/v1/rounds/{rid}/organisations/org-a/files",
            files={"file": ("说明.txt", uuid.uuid4().bytes, "text/plain")},
            headers=secretary,
        )
        assert uploaded.status_code == 201, uploaded.text
        township = await token(http, "tw-chengguan")
        opened = await http.post(
            f"/api/v1/rounds/{rid}/organisations/org-b/evaluations",
            json={"raters": {"member": 8, "non_member": 4}},
            headers=township,
        )
        assert opened.status_code == 201, opened.text
        evaluation_id = opened.json()["evaluation_id"]
        slips = await http.get(f"/api/v1/evaluations/{evaluation_id}/tokens", headers=township)
        tokens = TOKEN_IN_URL.findall(slips.text)
    return World(rid, uploaded.json()["sha256"], tokens[0], evaluation_id)


def concrete(path: str, world: World, harmless: bool = False) -> str:
    """``path`` with its parameters filled. ``harmless``: names that match nothing, for posts
    that would otherwise change a real account or organisation."""
    values = {
        "org_id": "no-such-org" if harmless else "org-a",
        "round_id": world.round_id,
        "sha256": world.sha256,
        "token": world.token,
        "evaluation_id": world.evaluation_id,
        "key": "no-such-circular",
        "fmt": "docx",
        "username": "no-such-user" if harmless else "sec-a",
        "path": "ui.css",
        "inspection_id": "no-such-inspection",
        "draw_id": "no-such-draw",
        "briefing_id": "no-such-briefing",
    }
    for name in PARAMETER.findall(path):
        assert name in values, f"a new path parameter {name!r} in {path}: give it a value here"
    filled = PARAMETER.sub(lambda m: values[m.group(1)], path)
    assert "{" not in filled, path
    return filled


@contextlib.asynccontextmanager
async def signed_in(stack: Stack, username: str = "county") -> AsyncIterator[httpx.AsyncClient]:
    """A browser with the login cookie of ``username``."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as browser:
        login = await browser.post(
            "/ui/login",
            data={"username": username, "password": PASSWORD, "next": "/ui/"},
            headers={"Origin": stack.base_url},
        )
        assert login.status_code == 303, login.text
        yield browser


def assert_headers(route: PageRoute, answer: httpx.Response) -> None:
    where = (route.path, answer.status_code)
    csp = answer.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, where
    assert "object-src 'none'" in csp and "base-uri 'self'" in csp, where
    assert answer.headers.get("x-frame-options") == "DENY", where
    assert answer.headers.get("x-content-type-options") == "nosniff", where
    ballot = route.path.startswith("/ballot")
    expected = "no-referrer" if ballot else "same-origin"
    assert answer.headers.get("referrer-policy") == expected, where
    private = (route.path.startswith("/ui/") and not route.path.startswith("/ui/static/")) or (
        ballot
    )
    if private:
        assert answer.headers.get("cache-control") == "no-store", where
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src is not None, where
    if route.path not in DOCS:  # Swagger UI starts with an inline script and a CDN
        assert script_src.group(1) == "'self'", where
    if "text/html" in answer.headers.get("content-type", "") and route.path not in DOCS:
        # No inline script on any page: the policy would block it, so it would be a bug too.
        # (A JSON data block is not a script: browsers never run it.)
        inline = r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>\s*\S"
        assert not re.search(inline, answer.text), where


async def test_the_route_list_is_what_the_table_runs_over() -> None:
    assert len(GETS) >= 30 and len(POSTS) >= 12, (len(GETS), len(POSTS))
    assert {r.path for r in GETS} >= {"/ui/overview", "/ballot/{token}", "/public/commitments"}
    assert {r.method for r in POSTS} <= {"POST", "PUT", "PATCH", "DELETE"}
    # The exemptions, reviewed here when they grow: the ballot (its one-time token), and the
    # Temporal UI's codec endpoint (api.routers.codec makes the cross-site check itself).
    assert {"/ballot", "/codec/decode", "/codec/encode"} == CSRF_EXEMPT


async def test_every_page_answers_with_the_security_headers(stack: Stack, world: World) -> None:
    anonymous = httpx.AsyncClient(base_url=stack.base_url, timeout=60)
    statuses: dict[str, list[int]] = {}
    async with signed_in(stack) as browser, anonymous:
        for route in GETS:
            path = concrete(route.path, world)
            for client in (browser, anonymous):
                answer = await client.get(path)
                assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])
                assert_headers(route, answer)
                statuses.setdefault(route.path, []).append(answer.status_code)
    # Signed in, the dashboard's pages are really shown (not a redirect to the login).
    shown = [p for p, (mine, _) in statuses.items() if p.startswith("/ui/") and mine == 200]
    assert len(shown) >= 12, statuses
    FIGURES["gets"] = sum(len(v) for v in statuses.values())


CROSS_SITE: list[dict[str, str]] = [
    {"Origin": FOREIGN},
    {"Referer": f"{FOREIGN}/ui/overview"},
    {},
    {"Origin": "null"},
    {"Origin": FOREIGN, "Referer": "{base}/ui/overview"},
    {"Origin": "{base}.evil.example"},
]


async def test_every_page_post_refuses_a_cross_site_form(stack: Stack, world: World) -> None:
    refused = 0
    async with signed_in(stack) as browser:
        for route in POSTS:
            path = concrete(route.path, world, harmless=True)
            for headers in CROSS_SITE:
                sent = {k: v.format(base=stack.base_url) for k, v in headers.items()}
                answer = await browser.request(route.method, path, data={"x": "1"}, headers=sent)
                if route.path in CSRF_EXEMPT:
                    # The route's own check answers, not the CSRF one: an incomplete ballot;
                    # the codec endpoint's refusal of another site (403).
                    assert CSRF_MESSAGE not in answer.text, (path, sent)
                    expected = (403,) if route.path.startswith("/codec/") else (404, 409, 422)
                    assert answer.status_code in expected, (path, answer.status_code)
                    continue
                assert answer.status_code == 403, (path, sent, answer.status_code)
                assert CSRF_MESSAGE in answer.text, (path, sent)
                assert_headers(route, answer)
                refused += 1
        # Still signed in: the refused logout did nothing.
        assert (await browser.get("/ui/overview")).status_code == 200
    FIGURES["refused_posts"] = refused


async def test_a_same_origin_post_passes_the_cross_site_check(stack: Stack, world: World) -> None:
    by_origin = {"Origin": stack.base_url}
    by_referer = {"Referer": f"{stack.base_url}/ui/overview"}
    for route in POSTS:
        path = concrete(route.path, world, harmless=True)
        for headers in (by_origin, by_referer):
            # A session of its own per post: a logout or a login must not end the others.
            async with signed_in(stack) as browser:
                answer = await browser.request(route.method, path, data={}, headers=headers)
            assert not (answer.status_code == 403 and CSRF_MESSAGE in answer.text), (path, headers)
            assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])


#: What the last run checked, for docs/reliability.md.
FIGURES: dict[str, int] = {}
