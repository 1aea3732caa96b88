"""The short paths notices, digests and circular notices link to lead to the dashboard's
pages (over HTTP against the running app)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Stack


@pytest.mark.asyncio(loop_scope="session")
async def test_message_links_redirect_to_dashboard_pages(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, follow_redirects=False) as http:
        cases = {
            "/orgs/org-a?round=r-1": "/ui/orgs/org-a?round=r-1",
            "/rounds/r-1?light=red": "/ui/laggards?round=r-1&light=red",
            "/rounds/r-1/circulars/2024-03-20": "/ui/export/circulars/r-1/2024-03-20",
        }
        for path, target in cases.items():
            response = await http.get(path)
            assert response.status_code == 307, path
            assert response.headers["location"] == target
        # Following one without a login ends on the login page, not an error.
        followed = await http.get("/orgs/org-a?round=r-1", follow_redirects=True)
        assert followed.status_code == 200 and "登录" in followed.text
