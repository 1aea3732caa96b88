"""Signing in for programs that talk to the API for longer than a token lives (the admin
CLI's progress loops, the benchmarks): :class:`SignedInAuth` carries the bearer token and,
when the API answers 401 (the token expired or its session ended), signs in again once and
repeats the request. It works with ``httpx.Client`` and ``httpx.AsyncClient`` alike.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

LOGIN_PATH = "/api/v1/auth/login"


class SignedInAuth(httpx.Auth):
    """Bearer authentication that signs in (again) with a username and password."""

    requires_response_body = True

    def __init__(self, username: str, password: str, token: str | None = None) -> None:
        self.username = username
        self.password = password
        self.token = token

    def _login(self, request: httpx.Request) -> httpx.Request:
        return httpx.Request(
            "POST",
            request.url.copy_with(path=LOGIN_PATH, query=None),
            json={"username": self.username, "password": self.password},
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send ``request`` with the token; on a 401, sign in again and send it once more
        (a refused sign-in is the answer the caller sees)."""
        if request.url.path == LOGIN_PATH:
            yield request
            return
        if self.token is None:
            signed_in = yield self._login(request)
            if signed_in.status_code != 200:
                return
            self.token = str(signed_in.json()["access_token"])
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code != 401:
            return
        signed_in = yield self._login(request)
        if signed_in.status_code != 200:
            return
        self.token = str(signed_in.json()["access_token"])
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request
