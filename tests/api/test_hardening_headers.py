"""Security headers on every response and the cross-site check of page forms (issue 13,
items 6 and 7), over the real stack (uvicorn serving the app, dev server, worker)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.datastructures import Headers

from api.security import same_site
from tests.api.conftest import PASSWORD, Stack, token

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


def assert_protected(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src-attr")[0]
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("x-content-type-options") == "nosniff"


@contextlib.asynccontextmanager
async def signed_in(stack: Stack, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client with the login cookie of ``username``."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        login = await http.post(
            "/ui/login",
            data={"username": username, "password": PASSWORD, "next": "/ui/"},
            headers={"Origin": stack.base_url},
        )
        assert login.status_code == 303, login.text
        yield http


async def test_every_kind_of_response_carries_the_security_headers(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    county = await token(http, "county")
    responses = {
        "login page": await http.get("/ui/login"),
        "static": await http.get("/ui/static/ui.css"),
        "api": await http.get("/api/v1/rounds", headers=county),
        "api 401": await http.get("/api/v1/rounds"),
        "api 404": await http.get("/api/v1/no-such-thing"),
        "ballot": await http.get("/ballot/no-such-token"),
        "public": await http.get("/public/commitments"),
    }
    for name, response in responses.items():
        assert_protected(response)
        expected = "no-referrer" if name == "ballot" else "same-origin"
        assert response.headers.get("referrer-policy") == expected, name
    assert responses["api"].headers["cache-control"] == "no-store"
    assert responses["ballot"].headers["cache-control"] == "no-store"
    assert "no-store" not in responses["static"].headers.get("cache-control", "")


async def test_signed_in_pages_and_downloads_are_not_stored(stack: Stack, round_id: str) -> None:
    async with signed_in(stack, "county") as http:
        overview = await http.get(f"/ui/overview?round={round_id}")
        assert overview.status_code == 200
        assert overview.headers["cache-control"] == "no-store"
        assert_protected(overview)
        export = await http.get(f"/ui/export/organisations.xlsx?round={round_id}")
        assert export.status_code == 200
        assert export.headers["cache-control"] == "no-store"
        assert export.headers["x-content-type-options"] == "nosniff"


async def test_inline_styles_of_public_pages_carry_the_policys_nonce(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    page = await http.get("/ballot/no-such-token")
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"])
    assert nonce is not None
    styles = re.findall(r"<style([^>]*)>", page.text)
    assert styles and all(f'nonce="{nonce.group(1)}"' in s for s in styles), styles
    again = await http.get("/ballot/no-such-token")
    assert nonce.group(0) not in again.headers["content-security-policy"]  # fresh per request


async def test_page_posts_without_a_same_origin_origin_or_referer_are_refused(
    stack: Stack, round_id: str
) -> None:
    async with signed_in(stack, "ins-zhang") as http:
        act = f"/ui/orgs/org-a/act?round={round_id}"
        form = {"action": "remind", "key": "csrf-test", "next": "/ui/"}
        for headers in (
            {},
            {"Origin": FOREIGN},
            {"Referer": f"{FOREIGN}/ui/orgs/org-a"},
            {"Origin": "null"},
            {"Origin": FOREIGN, "Referer": f"{stack.base_url}/ui/orgs/org-a"},
        ):
            refused = await http.post(act, data=form, headers=headers)
            assert refused.status_code == 403, (headers, refused.status_code)
            assert (
                "跨站请求被拒绝" in refused.text and "text/html" in refused.headers["content-type"]
            )
        logout = await http.post("/ui/logout")
        assert logout.status_code == 403
    anonymous = httpx.AsyncClient(base_url=stack.base_url, timeout=60)
    async with anonymous:
        login = await anonymous.post("/ui/login", data={"username": "county", "password": PASSWORD})
        assert login.status_code == 403 and "cz_token" not in login.cookies


async def test_same_origin_page_posts_and_the_api_pass(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    by_referer = await http.post(
        "/ui/login",
        data={"username": "county", "password": PASSWORD},
        headers={"Referer": f"{stack.base_url}/ui/login"},
    )
    assert by_referer.status_code == 303
    # The API authenticates with bearer tokens, never a cookie: no Origin needed.
    api = await http.post("/api/v1/auth/login", json={"username": "county", "password": PASSWORD})
    assert api.status_code == 200
    # A ballot's form carries its one-time token (the ballot page sends no referrer).
    ballot = await http.post("/ballot", data={"token": "no-such-token"})
    assert ballot.status_code != 403 or "跨站" not in ballot.text


@pytest.mark.parametrize(
    ("headers", "public", "allowed"),
    [
        ({"host": "cz.example", "origin": "https://cz.example"}, None, True),
        ({"host": "127.0.0.1:8000", "origin": "https://cz.example"}, "https://cz.example", True),
        (
            {
                "host": "127.0.0.1:8000",
                "x-forwarded-host": "cz.example",
                "origin": "https://cz.example",
            },
            None,
            True,
        ),
        ({"host": "cz.example", "referer": "https://cz.example/ui/orgs/a"}, None, True),
        ({"host": "cz.example", "origin": "https://cz.example.evil.example"}, None, False),
        ({"host": "cz.example", "referer": "https://evil.example/?cz.example"}, None, False),
        ({"host": "cz.example", "origin": "null"}, None, False),
        ({"host": "cz.example", "referer": "not a url"}, None, False),
        ({"host": "cz.example"}, "https://cz.example", False),
    ],
)
async def test_what_counts_as_this_site(
    headers: dict[str, str], public: str | None, allowed: bool
) -> None:
    assert same_site(Headers(headers), public) is allowed
