"""The evidence file storage's two adapters over the real things: a directory, and a real
S3-compatible HTTP server (moto's, on a free localhost port) reached with boto3 through the
same settings production uses. The API over S3 is in tests/api/test_upload_storage_api.py."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pydantic import ValidationError

from chuangzheng.ports import free_port
from chuangzheng.settings import Settings
from chuangzheng.upload_storage import (
    CHUNK_BYTES,
    DirectoryUploadStorage,
    S3UploadStorage,
    UploadStorageError,
    build_upload_storage,
)

REGION = "us-east-1"
ACCESS_KEY = "cz-test-access"
SECRET_KEY = "cz-test-secret"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_all(storage: Any, sha256: str) -> bytes | None:
    stored = storage.open(sha256)
    if stored is None:
        return None
    data = b"".join(stored.chunks())
    assert len(data) == stored.size
    return data


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server over HTTP on a free port (moto's, in a thread)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_settings(tmp_path: Path, endpoint: str, bucket: str, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        upload_storage="s3",
        upload_s3_bucket=bucket,
        upload_s3_endpoint=endpoint,
        upload_s3_region=REGION,
        upload_s3_access_key_id=ACCESS_KEY,
        upload_s3_secret_access_key=SECRET_KEY,
        **extra,
    )


def make_bucket(endpoint: str) -> tuple[str, Any]:
    """A new bucket (the service never creates one: the operator does) and a client to
    look inside it."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    bucket = f"cz-uploads-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return bucket, client


# ----- the directory --------------------------------------------------------------------------
def test_the_directory_stores_by_sha256_once_and_streams_it_back(tmp_path: Path) -> None:
    storage = build_upload_storage(Settings(data_dir=tmp_path))
    assert isinstance(storage, DirectoryUploadStorage)
    data = os.urandom(3 * CHUNK_BYTES + 17)  # several chunks and a short last one
    digest = sha(data)
    storage.save(digest, data, "application/pdf")
    stored_at = tmp_path / "uploads" / digest[:2] / digest
    assert stored_at.read_bytes() == data
    first_write = stored_at.stat().st_mtime_ns
    storage.save(digest, data, "application/pdf")  # the same file again: nothing written
    assert stored_at.stat().st_mtime_ns == first_write
    assert read_all(storage, digest) == data
    assert read_all(storage, sha(b"never stored")) is None
    assert not list((tmp_path / "uploads").rglob("*.part"))


def test_the_directory_honours_its_setting_and_refuses_what_is_not_a_sha256(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "shared-volume"
    storage = build_upload_storage(Settings(data_dir=tmp_path, upload_dir=elsewhere))
    storage.save(sha(b"x"), b"x", "text/plain")
    assert (elsewhere / sha(b"x")[:2] / sha(b"x")).is_file()
    for bad in ("../../etc/passwd", "ab/../cd", sha(b"x").upper(), sha(b"x")[:-1], ""):
        with pytest.raises(ValueError, match="not a sha256"):
            storage.open(bad)
        with pytest.raises(ValueError, match="not a sha256"):
            storage.save(bad, b"x", "text/plain")


def test_an_unwritable_directory_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the directory should be")
    storage = DirectoryUploadStorage(blocker)
    with pytest.raises(UploadStorageError, match="cannot write"):
        storage.save(sha(b"y"), b"y", "text/plain")


# ----- an S3-compatible bucket ----------------------------------------------------------------
def test_a_bucket_stores_by_sha256_under_the_prefix_once_and_streams_it_back(
    tmp_path: Path, s3_endpoint: str
) -> None:
    bucket, inspector = make_bucket(s3_endpoint)
    storage = build_upload_storage(s3_settings(tmp_path, s3_endpoint, bucket))
    assert isinstance(storage, S3UploadStorage)
    assert storage.location == f"s3://{bucket}/uploads/ at {s3_endpoint}"
    data = os.urandom(5 * CHUNK_BYTES + 3)
    digest = sha(data)
    storage.save(digest, data, "image/png")
    key = f"uploads/{digest[:2]}/{digest}"
    head = inspector.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data) and head["ContentType"] == "image/png"
    first_write = head["LastModified"]
    storage.save(digest, data, "image/png")  # already there: not sent again
    assert inspector.head_object(Bucket=bucket, Key=key)["LastModified"] == first_write
    listed = inspector.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [key]
    assert read_all(storage, digest) == data
    assert read_all(storage, sha(b"never stored")) is None
    # Nothing went to the directory.
    assert not (tmp_path / "uploads").exists()


def test_a_bucket_without_a_prefix_keeps_the_keys_at_its_root(
    tmp_path: Path, s3_endpoint: str
) -> None:
    bucket, inspector = make_bucket(s3_endpoint)
    storage = build_upload_storage(s3_settings(tmp_path, s3_endpoint, bucket, upload_s3_prefix="/"))
    storage.save(sha(b"z"), b"z", "text/plain")
    keys = [item["Key"] for item in inspector.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"{sha(b'z')[:2]}/{sha(b'z')}"]


def test_a_missing_bucket_or_an_unreachable_store_is_a_storage_error(
    tmp_path: Path, s3_endpoint: str
) -> None:
    missing = build_upload_storage(s3_settings(tmp_path, s3_endpoint, "no-such-bucket-cz"))
    with pytest.raises(UploadStorageError, match="no-such-bucket-cz"):
        missing.save(sha(b"a"), b"a", "text/plain")
    with pytest.raises(UploadStorageError, match="cannot read"):
        missing.open(sha(b"a"))
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = build_upload_storage(s3_settings(tmp_path, closed, "any-bucket"))
    with pytest.raises(UploadStorageError, match="cannot store"):
        unreachable.save(sha(b"a"), b"a", "text/plain")
    with pytest.raises(UploadStorageError, match="cannot read"):
        unreachable.open(sha(b"a"))


# ----- the settings ---------------------------------------------------------------------------
def test_s3_settings_are_checked_with_the_variable_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="CZ_UPLOAD_S3_BUCKET must be set"):
        Settings(data_dir=tmp_path, upload_storage="s3")
    with pytest.raises(ValidationError, match="CZ_UPLOAD_S3_SECRET_ACCESS_KEY go together"):
        Settings(
            data_dir=tmp_path,
            upload_storage="s3",
            upload_s3_bucket="b",
            upload_s3_access_key_id="only-the-id",
        )
    with pytest.raises(ValidationError, match="CZ_UPLOAD_S3_ENDPOINT must be a URL"):
        Settings(
            data_dir=tmp_path, upload_storage="s3", upload_s3_bucket="b", upload_s3_endpoint="minio"
        )
    with pytest.raises(ValidationError, match="upload_storage"):
        Settings(data_dir=tmp_path, upload_storage="ftp")
    normalised = Settings(
        data_dir=tmp_path, upload_storage="s3", upload_s3_bucket="b", upload_s3_prefix="/cz/files"
    )
    assert normalised.upload_s3_prefix == "cz/files/"
    # Credentials are secrets: never in the settings' repr (which logs may print).
    secret = Settings(
        data_dir=tmp_path,
        upload_storage="s3",
        upload_s3_bucket="b",
        upload_s3_access_key_id="AKIA-visible-nowhere",
        upload_s3_secret_access_key="s3cr3t-visible-nowhere",
    )
    assert "visible-nowhere" not in repr(secret)


def test_the_environment_selects_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CZ_UPLOAD_STORAGE", "s3")
    monkeypatch.setenv("CZ_UPLOAD_S3_BUCKET", "county-files")
    monkeypatch.setenv("CZ_UPLOAD_S3_ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("CZ_UPLOAD_S3_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("CZ_UPLOAD_S3_SECRET_ACCESS_KEY", "secret")
    storage = build_upload_storage(Settings(data_dir=tmp_path))
    assert storage.location == "s3://county-files/uploads/ at http://minio:9000"
