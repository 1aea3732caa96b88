"""The codec endpoint for the Temporal UI (issue 14), over the real API: uvicorn serving
``create_app`` with payload encryption on, connected to the real dev server.

What could go wrong: decoded payloads (every organisation's evidence and decisions) handed to
an anonymous caller, to a role other than the county office, or to a page on another site
through a permissive CORS answer; a decode that does not undo what the process encrypts;
the Temporal UI's browser call refused by the pages' cross-site check.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from api.auth import upsert_user
from api.main import create_app
from chuangzheng.bootstrap import connect_temporal, temporal_data_converter
from chuangzheng.payload_codec import ENCODING, KEY_ID, AesGcmPayloadCodec, new_key_text
from chuangzheng.payload_codec import parse_payload_keys as keys
from chuangzheng.settings import Settings
from domain.organisation import Role
from tests.api.conftest import PASSWORD, free_port
from tests.workflows.support import org_plan, organisation, start_campaign
from worker import build_worker
from workflows.organisation import OrganisationCampaignWorkflow

UI_ORIGIN = "http://temporal-ui.example.org:8080"
KEY_OLD, KEY_NEW = new_key_text(), new_key_text()
USERS = {
    "county": (Role.COUNTY_OFFICE, ""),
    "township": (Role.TOWNSHIP, "城关镇"),
    "secretary": (Role.SECRETARY, "org-a"),
}


@pytest.fixture(scope="module")
def codec_settings(
    tmp_path_factory: pytest.TempPathFactory, dev_server: WorkflowEnvironment
) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("codec-api")
    return Settings(
        environment="test",
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'api.db'}",
        temporal_address=dev_server.client.service_client.config.target_host,
        task_queue=f"codec-{uuid.uuid4()}",
        secret_key=f"test-{uuid.uuid4()}",
        payload_encryption=True,
        payload_keys=f"new:{KEY_NEW},old:{KEY_OLD}",
        temporal_ui_origin=UI_ORIGIN + "/",
    )


@pytest.fixture(scope="module")
def codec_api(codec_settings: Settings) -> Iterator[str]:
    engine = make_engine(codec_settings.database_url)
    create_schema(engine)
    with session_factory(engine).begin() as session:
        for username, (role, scope) in USERS.items():
            upsert_user(
                session,
                username=username,
                display_name=username,
                password=PASSWORD,
                role=role,
                scope_key=scope,
            )
    engine.dispose()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(codec_settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest_asyncio.fixture(loop_scope="session")
async def api(codec_api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=codec_api, timeout=30) as client:
        yield client


async def login(api: httpx.AsyncClient, username: str) -> str:
    answer = await api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    """The remote codec protocol's body: protobuf JSON, bytes in base64."""
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def from_json(body: dict[str, Any]) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in p.get("metadata", {}).items()},
            data=base64.b64decode(p.get("data", "")),
        )
        for p in body["payloads"]
    ]


async def sealed(settings: Settings, *values: object) -> tuple[list[Payload], list[Payload]]:
    """``values`` as the process's converter writes them: (plain, encrypted)."""
    converter = temporal_data_converter(settings)
    plain = converter.payload_converter.to_payloads(list(values))
    assert converter.payload_codec is not None
    return plain, await converter.payload_codec.encode(plain)


async def test_county_office_staff_decode_what_the_process_encrypts(
    api: httpx.AsyncClient, codec_settings: Settings
) -> None:
    plain, encrypted = await sealed(codec_settings, {"组织": "城关镇东关村党支部"}, "证明材料")
    # Written under the old key before rotation: still decoded.
    old_only = codec_settings.model_copy(update={"payload_keys": f"old:{KEY_OLD}"})
    plain_old, under_old = await sealed(old_only, "旧密钥下的载荷")
    token = await login(api, "county")
    answer = await api.post(
        "/codec/decode",
        json=as_json([*encrypted, *under_old]),
        headers={"Authorization": f"Bearer {token}", "X-Namespace": "default"},
    )
    assert answer.status_code == 200, answer.text
    decoded = from_json(answer.json())
    assert decoded == [*plain, *plain_old]
    assert answer.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in answer.headers  # no Origin: no CORS


async def test_encode_then_decode_round_trips_under_the_current_key(
    api: httpx.AsyncClient, codec_settings: Settings
) -> None:
    plain, _ = await sealed(codec_settings, {"step": "公开承诺"})
    auth = {"Authorization": f"Bearer {await login(api, 'county')}"}
    encoded = await api.post("/codec/encode", json=as_json(plain), headers=auth)
    assert encoded.status_code == 200, encoded.text
    (sealed_payload,) = from_json(encoded.json())
    assert sealed_payload.metadata["encoding"] == ENCODING
    assert sealed_payload.metadata[KEY_ID] == b"new"
    assert "公开承诺".encode() not in sealed_payload.data
    # The process's own codec reads it: the endpoint encrypts with the worker's keys.
    mine = AesGcmPayloadCodec(keys(codec_settings.payload_keys))
    assert await mine.decode([sealed_payload]) == plain
    decoded = await api.post("/codec/decode", json=encoded.json(), headers=auth)
    assert from_json(decoded.json()) == plain


async def test_anonymous_and_other_roles_are_refused(
    api: httpx.AsyncClient, codec_settings: Settings
) -> None:
    _, encrypted = await sealed(codec_settings, "机密")
    body = as_json(encrypted)
    for path in ("/codec/decode", "/codec/encode"):
        anonymous = await api.post(path, json=body)
        assert anonymous.status_code == 401, anonymous.text
        assert "payloads" not in anonymous.json()
        forged = await api.post(path, json=body, headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 401
    for username in ("township", "secretary"):
        token = await login(api, username)
        refused = await api.post(
            "/codec/decode", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 403, (username, refused.text)
        assert "机密".encode() not in refused.content


async def test_the_temporal_ui_origin_gets_cors_with_the_login_cookie_and_no_other(
    api: httpx.AsyncClient, codec_settings: Settings
) -> None:
    plain, encrypted = await sealed(codec_settings, "界面解码")
    token = await login(api, "county")
    preflight = await api.options(
        "/codec/decode",
        headers={
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == UI_ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in preflight.headers["access-control-allow-headers"]
    # The browser's call: the pages' login cookie, the UI's origin, the namespace header.
    answer = await api.post(
        "/codec/decode",
        json=as_json(encrypted),
        headers={"Origin": UI_ORIGIN, "X-Namespace": "default", "Cookie": f"cz_token={token}"},
    )
    assert answer.status_code == 200, answer.text
    assert from_json(answer.json()) == plain
    assert answer.headers["access-control-allow-origin"] == UI_ORIGIN
    # The UI's browser without a sign-in can read the 401 (and sends the person to sign in).
    anonymous = await api.post(
        "/codec/decode", json=as_json(encrypted), headers={"Origin": UI_ORIGIN}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == UI_ORIGIN

    evil = "https://evil.example.com"
    foreign_preflight = await api.options(
        "/codec/decode", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    assert foreign_preflight.status_code == 403
    assert "access-control-allow-origin" not in foreign_preflight.headers
    foreign = await api.post(
        "/codec/decode",
        json=as_json(encrypted),
        headers={"Origin": evil, "Cookie": f"cz_token={token}"},
    )
    assert foreign.status_code == 403
    assert "access-control-allow-origin" not in foreign.headers
    assert "界面解码".encode() not in foreign.content
    # The cookie alone, with no page naming itself (a forged form, a stray tool): refused;
    # with a page of this site (Referer), or a bearer token without Origin: served.
    cookie_only = await api.post(
        "/codec/decode", json=as_json(encrypted), headers={"Cookie": f"cz_token={token}"}
    )
    assert cookie_only.status_code == 403
    from_our_page = await api.post(
        "/codec/decode",
        json=as_json(encrypted),
        headers={
            "Cookie": f"cz_token={token}",
            "Referer": f"{str(api.base_url).rstrip('/')}/ui/overview",
        },
    )
    assert from_our_page.status_code == 200, from_our_page.text


async def test_another_namespace_an_unknown_key_and_a_bad_body_are_refused(
    api: httpx.AsyncClient, codec_settings: Settings
) -> None:
    auth = {"Authorization": f"Bearer {await login(api, 'county')}"}
    _, encrypted = await sealed(codec_settings, "x")
    other = await api.post(
        "/codec/decode", json=as_json(encrypted), headers={**auth, "X-Namespace": "elsewhere"}
    )
    assert other.status_code == 403
    stranger = codec_settings.model_copy(update={"payload_keys": f"gone:{KEY_OLD}"})
    _, unknown = await sealed(stranger, "y")
    undecodable = await api.post("/codec/decode", json=as_json(unknown), headers=auth)
    assert undecodable.status_code == 422
    assert "'gone'" in undecodable.text
    bad = await api.post("/codec/decode", content=b"not json", headers=auth)
    assert bad.status_code == 422


async def test_the_ui_decodes_a_real_history_the_worker_encrypted(
    api: httpx.AsyncClient, codec_settings: Settings, dev_server: WorkflowEnvironment
) -> None:
    """What the Temporal UI does: read the stored history (ciphertext) and send its payloads
    here. The workflow is the project's, run by its worker with the same keys."""
    engine = make_engine(codec_settings.database_url)
    client = await connect_temporal(codec_settings)
    org = organisation("org-codec-ui")
    plan = org_plan(org, datetime.now(UTC), round_id=f"r-ui-{uuid.uuid4().hex[:6]}")
    async with build_worker(
        client, task_queue=codec_settings.task_queue, sessions=session_factory(engine)
    ):
        handle = await start_campaign(client, codec_settings.task_queue, plan)
        await handle.query(OrganisationCampaignWorkflow.status)
    await handle.terminate("test over")  # nothing polls its queue after this test
    engine.dispose()
    # The server's copy, as the UI receives it: nothing decoded.
    history = await dev_server.client.get_workflow_handle(handle.id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    stored = list(started.input.payloads)
    assert stored and all(p.metadata["encoding"] == ENCODING for p in stored)
    assert org.name.encode() not in stored[0].data
    token = await login(api, "county")
    answer = await api.post(
        "/codec/decode",
        json=as_json(stored),
        headers={"Origin": UI_ORIGIN, "X-Namespace": "default", "Cookie": f"cz_token={token}"},
    )
    assert answer.status_code == 200, answer.text
    (decoded,) = from_json(answer.json())
    assert decoded.metadata["encoding"] == b"json/plain"
    assert json.loads(decoded.data)["plan"]["organisation"]["name"] == org.name
    township = await login(api, "township")
    refused = await api.post(
        "/codec/decode", json=as_json(stored), headers={"Authorization": f"Bearer {township}"}
    )
    assert refused.status_code == 403
