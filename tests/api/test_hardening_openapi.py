"""The extension decision's path parameter (issue 13, item 12): declared in the OpenAPI
document (``tests/api/test_openapi.py``) and still carried to the workflow, over the real
stack."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api.conftest import Stack, extended_first_deadline, start_demo_round, token

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_extension_is_decided_through_its_declared_path_parameter(
    stack: Stack,
) -> None:
    rid = await start_demo_round(stack, f"ext-{uuid.uuid4().hex[:8]}")
    base = f"/api/v1/rounds/{rid}/organisations/org-c"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        secretary, instructor = await token(http, "sec-c"), await token(http, "ins-liu")
        status = (await http.get(f"{base}/status", headers=secretary)).json()
        asked = await http.post(
            f"{base}/extensions",
            json={
                "new_deadline": extended_first_deadline(status).isoformat(),
                "reason": "会期冲突",
            },
            headers=secretary,
        )
        assert asked.status_code == 200, asked.text
        # The default answer names the extension filed (the Update's result).
        extension = {"id": asked.json()["result"]["extension_id"]}
        unknown = await http.post(
            f"{base}/extensions/no-such-extension/decision",
            json={"approve": True},
            headers=instructor,
        )
        assert unknown.status_code in (404, 409, 422), unknown.text
        decided = await http.post(
            f"{base}/extensions/{extension['id']}/decision",
            json={"approve": True},
            headers={**instructor, "Prefer": "return=representation"},
        )
        assert decided.status_code == 200, decided.text
        (after,) = decided.json()["state"]["extensions"]
        assert after["id"] == extension["id"] and after["status"] == "approved"
