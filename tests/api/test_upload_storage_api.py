"""Evidence files in an S3-compatible bucket, over the real stack: a second API process (same
read model, same Temporal, same round) configured with ``CZ_UPLOAD_STORAGE=s3`` against a
real S3 HTTP server (moto's, on a free port). What a secretary uploads lands in the bucket,
not the data directory; the size and type limits hold; the file downloads through the pages;
a store that is down answers 503 with Retry-After. The directory adapter is what every other
upload test of tests/api runs on."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from moto.server import ThreadedMotoServer

from api.main import create_app
from chuangzheng.settings import Settings
from tests.api.conftest import PASSWORD, Stack, free_port, token

pytestmark = pytest.mark.asyncio(loop_scope="session")

REGION = "us-east-1"
ACCESS = {"aws_access_key_id": "cz-test-access", "aws_secret_access_key": "cz-test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server over HTTP (moto's, in a thread, on a free port)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def serve(settings: Settings) -> tuple[str, uvicorn.Server, threading.Thread]:
    """uvicorn serving ``create_app(settings)`` in a thread; the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def s3_settings(stack: Stack, endpoint: str, bucket: str) -> Settings:
    """The stack's settings with the uploads in ``bucket`` at ``endpoint``."""
    fields: dict[str, Any] = stack.settings.model_dump()
    fields.update(
        upload_storage="s3",
        upload_s3_bucket=bucket,
        upload_s3_endpoint=endpoint,
        upload_s3_region=REGION,
        upload_s3_access_key_id=ACCESS["aws_access_key_id"],
        upload_s3_secret_access_key=ACCESS["aws_secret_access_key"],
    )
    return Settings(**fields)


async def test_uploads_go_to_the_bucket_and_download_through_the_pages(
    stack: Stack, round_id: str, s3_endpoint: str
) -> None:
    inspector = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION, **ACCESS)
    bucket = f"cz-api-{uuid.uuid4().hex[:12]}"
    inspector.create_bucket(Bucket=bucket)
    base_url, server, thread = serve(s3_settings(stack, s3_endpoint, bucket))
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            secretary = await token(http, "sec-a")
            target = f"/api/v1/rounds/{round_id}/organisations/org-a/files"
            data = "支部大会会议记录 ".encode() * 5000 + uuid.uuid4().bytes  # ~120 KB, 2+ chunks
            digest = hashlib.sha256(data).hexdigest()
            stored = await http.post(
                target, files={"file": ("会议记录.pdf", data, "application/pdf")}, headers=secretary
            )
            assert stored.status_code == 201, stored.text
            assert stored.json() == {"name": "会议记录.pdf", "sha256": digest, "size": len(data)}
            # In the bucket under the prefix, and nowhere in the data directory.
            head = inspector.head_object(Bucket=bucket, Key=f"uploads/{digest[:2]}/{digest}")
            assert head["ContentLength"] == len(data)
            assert head["ContentType"] == "application/pdf"
            assert not (stack.settings.upload_directory / digest[:2] / digest).exists()
            # The limits are the API's, whatever the storage.
            too_big = await http.post(
                target,
                files={"file": ("大.pdf", b"\0" * (20 * 1024 * 1024 + 1), "application/pdf")},
                headers=secretary,
            )
            assert too_big.status_code == 413, too_big.text
            refused = await http.post(
                target, files={"file": ("x.exe", b"MZ", "application/octet-stream")},
                headers=secretary,
            )  # fmt: skip
            assert refused.status_code == 415
            assert len(inspector.list_objects_v2(Bucket=bucket)["Contents"]) == 1

            login = await http.post(
                "/ui/login",
                data={"username": "sec-a", "password": PASSWORD, "next": "/ui/"},
                headers={"Origin": base_url},
            )
            assert login.status_code == 303, login.text
            served = await http.get(f"/ui/files/{round_id}/org-a/{digest}")
            assert served.status_code == 200, served.text
            assert served.content == data
            assert served.headers["content-type"] == "application/pdf"
            assert served.headers["content-length"] == str(len(data))
            assert served.headers["content-disposition"].startswith("attachment; filename*=utf-8''")
            # A file of the round never uploaded: 404, not a storage error.
            missing = hashlib.sha256(b"never uploaded").hexdigest()
            assert (await http.get(f"/ui/files/{round_id}/org-a/{missing}")).status_code == 404

            # The store goes away: uploads and downloads answer 503 with Retry-After.
            inspector.delete_object(Bucket=bucket, Key=f"uploads/{digest[:2]}/{digest}")
            inspector.delete_bucket(Bucket=bucket)
            down = await http.post(
                target, files={"file": ("说明.txt", b"store down", "text/plain")},
                headers=secretary,
            )  # fmt: skip
            assert down.status_code == 503, down.text
            assert down.json()["code"] == "storage_unavailable"
            assert down.headers["retry-after"]
            gone = await http.get(f"/ui/files/{round_id}/org-a/{digest}")
            assert gone.status_code == 503, gone.text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
