"""Where evidence files live: one interface, two adapters, chosen by ``CZ_UPLOAD_STORAGE``.

- ``directory`` (the default): files under ``CZ_UPLOAD_DIR`` (``<CZ_DATA_DIR>/uploads``).
  Enough for one API process, or for replicas that share a ReadWriteMany volume.
- ``s3``: objects in a bucket of any S3-compatible store (AWS S3, MinIO, Ceph RGW, the
  clouds' object storage) at ``CZ_UPLOAD_S3_ENDPOINT``: what several API replicas on
  different hosts share without a shared file system.

Files are content-addressed: the key is the file's sha256 (``ab/abcdef…``, under
``CZ_UPLOAD_S3_PREFIX`` in a bucket), so storing the same bytes twice writes nothing new and a
stored file never changes. Who may read a file is decided by the read model's
``uploaded_files`` rows, never by the storage: a key alone opens nothing.

The calls block (disk, HTTP): the API runs them in its threadpool (``api.blocking.run_sync``,
and a download streams from a sync iterator, which Starlette iterates off the event loop).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    from chuangzheng.settings import Settings

#: A sha256 as the API hands it out: 64 lowercase hex digits. Anything else never reaches a
#: path or a key (no ``..``, no separators).
SHA256 = re.compile(r"^[0-9a-f]{64}$")

#: Bytes read per step when a stored file is streamed to a client.
CHUNK_BYTES = 64 * 1024


class UploadStorageError(RuntimeError):
    """The storage could not be reached or refused the call (the API answers 503)."""


@dataclass
class StoredUpload:
    """An open stored file: ``size`` bytes read from ``stream``; the reader closes it."""

    size: int
    stream: BinaryIO | Any  # a file, or botocore's StreamingBody (read/close, no BinaryIO)

    def chunks(self) -> Iterator[bytes]:
        """The file in :data:`CHUNK_BYTES` pieces, closing the stream at the end (or when
        the client goes away and the iterator is closed)."""
        try:
            while chunk := self.stream.read(CHUNK_BYTES):
                yield chunk
        finally:
            self.stream.close()


class UploadStorage(Protocol):
    """What the API needs of a file store."""

    @property
    def location(self) -> str:
        """Where files go, for logs and error messages (never a credential)."""
        ...

    def save(self, sha256: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under its ``sha256`` (already computed by the caller); storing the
        same file again is a no-op. Raises :class:`UploadStorageError`."""
        ...

    def open(self, sha256: str) -> StoredUpload | None:
        """The stored file, or None when nothing is stored under ``sha256``. Raises
        :class:`UploadStorageError` when the storage cannot answer."""
        ...


def checked_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits, else ValueError."""
    if not SHA256.fullmatch(sha256):
        raise ValueError(f"not a sha256: {sha256[:80]!r}")
    return sha256


# ----- a directory ---------------------------------------------------------------------------
class DirectoryUploadStorage:
    """Files under ``root`` as ``ab/abcdef…`` (two hex digits first: no directory holds more
    than 1/256 of the files)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, sha256: str) -> Path:
        sha256 = checked_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def save(self, sha256: str, data: bytes, content_type: str) -> None:
        target = self._path(sha256)
        if target.exists():
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own per writer: two replicas storing the same file at once on a
            # shared volume must not write into one temporary file.
            temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.part")
            temporary.write_bytes(data)
            temporary.replace(target)  # never a half-written file under the final name
        except OSError as exc:
            raise UploadStorageError(f"cannot write to {self.root}: {exc.strerror or exc}") from exc

    def open(self, sha256: str) -> StoredUpload | None:
        path = self._path(sha256)
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UploadStorageError(f"cannot read {self.root}: {exc.strerror or exc}") from exc
        return StoredUpload(size=path.stat().st_size, stream=stream)


# ----- an S3-compatible bucket ----------------------------------------------------------------
class S3UploadStorage:
    """Objects ``<prefix>ab/abcdef…`` in ``bucket``, through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", endpoint: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self._endpoint = endpoint

    @property
    def location(self) -> str:
        where = f" at {self._endpoint}" if self._endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def _key(self, sha256: str) -> str:
        sha256 = checked_sha256(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def save(self, sha256: str, data: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(sha256)
        try:
            # Content-addressed: an object under this key already holds these bytes, and
            # asking is cheaper than sending up to 20 MB again.
            if self._exists(key):
                return
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise UploadStorageError(f"cannot store in {self.location}: {exc}") from exc

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    def open(self, sha256: str) -> StoredUpload | None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(sha256)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404 and _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise UploadStorageError(f"cannot read {self.location}: {exc}") from exc
        except BotoCoreError as exc:
            raise UploadStorageError(f"cannot read {self.location}: {exc}") from exc
        return StoredUpload(size=int(answer["ContentLength"]), stream=answer["Body"])


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for the ``CZ_UPLOAD_S3_*`` settings. Without an access key boto3's
    own chain applies (``AWS_*`` variables, a Kubernetes service account's web identity, an
    instance role)."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": settings.upload_s3_addressing_style},
        # Since boto3 1.36 every upload carries a CRC checksum by default; several
        # S3-compatible stores (older MinIO and Ceph releases, some clouds' object storage)
        # reject it. Checksums only where the API requires them, as before.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.upload_s3_endpoint or None,
        region_name=settings.upload_s3_region or None,
        aws_access_key_id=settings.upload_s3_access_key_id or None,
        aws_secret_access_key=settings.upload_s3_secret_access_key or None,
        config=config,
    )


def build_upload_storage(settings: Settings) -> UploadStorage:
    """The storage ``CZ_UPLOAD_STORAGE`` names. Builds the client only: nothing is contacted
    until the first upload or download."""
    if settings.upload_storage == "s3":
        return S3UploadStorage(
            s3_client(settings),
            bucket=settings.upload_s3_bucket,
            prefix=settings.upload_s3_prefix,
            endpoint=settings.upload_s3_endpoint,
        )
    return DirectoryUploadStorage(settings.upload_directory)
