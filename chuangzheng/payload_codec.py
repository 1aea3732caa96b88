"""Encrypted Temporal payloads: an AES-GCM :class:`~temporalio.converter.PayloadCodec`.

Every payload a client or worker of the project sends to Temporal (workflow and activity
inputs and results, Update arguments and results, signals, queries, failure details) is
encrypted before it leaves the process, so the Temporal server, its database and its
operators see ciphertext only. The codec runs in the worker, the API's client and the CLI:
the bootstrap (``chuangzheng.bootstrap.connect_temporal``) puts it in the data converter.

Keys (``CZ_PAYLOAD_KEYS``): ``id1:base64key,id2:base64key``, each key 16, 24 or 32 bytes
(AES-128/192/256; generate one with :func:`new_key_text`). The **first** key encrypts; every
key listed decrypts. Rotation: put the new key first and keep the old ones after it until no
running workflow or retained history holds a payload under them.

Format of an encrypted payload:

- metadata ``encoding`` = ``binary/encrypted`` (:data:`ENCODING`),
- metadata ``encryption-key-id`` = the key's id (:data:`KEY_ID`), in clear so a reader knows
  which key to use,
- data = 12-byte random nonce + AES-GCM(serialized inner payload), with the key id as
  associated data: moving a ciphertext under another id's label fails authentication.

Nothing else is written: every byte of metadata is stored in history for every payload
(about 75 bytes more per payload than in clear: the two metadata entries, the nonce and the
16-byte tag).

Decoding a payload that is not encrypted (no ``binary/encrypted`` encoding) returns it as it
is: workflows started before encryption was turned on keep running. A payload under a key id
that is not configured, or whose ciphertext or key id was altered, raises
:class:`PayloadDecryptionError` naming the key id; nothing is ever decoded silently wrong.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

#: ``encoding`` metadata of an encrypted payload.
ENCODING = b"binary/encrypted"
#: Metadata naming the key a payload is encrypted under.
KEY_ID = "encryption-key-id"
#: AES-GCM's standard nonce length.
NONCE_BYTES = 12
#: Allowed key lengths in bytes (AES-128, AES-192, AES-256).
KEY_LENGTHS = (16, 24, 32)
#: A key id: letters, digits, ``.``, ``_`` and ``-`` (it is stored in clear in every payload).
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class PayloadKeyError(ValueError):
    """``CZ_PAYLOAD_KEYS`` cannot be used (malformed entry, bad base64, wrong length,
    duplicate id). The message names the entry, never the key material."""


class PayloadDecryptionError(Exception):
    """A payload could not be decrypted: its key id is not configured, or its ciphertext
    (or key id) was altered. ``key_id`` names the key the payload claims."""

    def __init__(self, message: str, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


@dataclass(frozen=True)
class PayloadKey:
    """One AES key and its id. ``repr`` never shows the key material."""

    key_id: str
    key: bytes = field(repr=False)


def new_key_text() -> str:
    """A fresh random 256-bit key, base64 (for ``CZ_PAYLOAD_KEYS``)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def parse_payload_keys(value: str) -> tuple[PayloadKey, ...]:
    """``id1:base64key,id2:base64key`` → the keys, in order (the first encrypts).

    Empty means no key. Raises :class:`PayloadKeyError` naming the bad entry (by position
    and id), never echoing key material.
    """
    keys: list[PayloadKey] = []
    seen: set[str] = set()
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    for position, entry in enumerate(entries, start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not key_id:
            raise PayloadKeyError(
                f"CZ_PAYLOAD_KEYS entry {position} is not 'id:base64key' (comma-separated)"
            )
        if not KEY_ID_PATTERN.match(key_id):
            raise PayloadKeyError(
                f"CZ_PAYLOAD_KEYS entry {position}: key id {key_id!r} may hold only letters, "
                "digits, '.', '_' and '-' (at most 64)"
            )
        if key_id in seen:
            raise PayloadKeyError(f"CZ_PAYLOAD_KEYS lists key id {key_id!r} twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise PayloadKeyError(f"CZ_PAYLOAD_KEYS key {key_id!r} is not valid base64") from None
        if len(key) not in KEY_LENGTHS:
            raise PayloadKeyError(
                f"CZ_PAYLOAD_KEYS key {key_id!r} has {len(key)} bytes; AES-GCM takes 16, 24 "
                "or 32 (32 recommended)"
            )
        seen.add(key_id)
        keys.append(PayloadKey(key_id=key_id, key=key))
    return tuple(keys)


class AesGcmPayloadCodec(PayloadCodec):
    """Encrypts with the first key, decrypts with any key by the id in the metadata."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        if not keys:
            raise PayloadKeyError("the payload codec needs at least one key (CZ_PAYLOAD_KEYS)")
        self._encrypt_id = keys[0].key_id
        self._ciphers = {key.key_id: AESGCM(key.key) for key in keys}

    @property
    def encrypting_key_id(self) -> str:
        """The id of the key new payloads are encrypted under."""
        return self._encrypt_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every configured id, the encrypting one first."""
        return tuple(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """``payload`` serialized and encrypted under the first key."""
        key_id = self._encrypt_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), key_id.encode("ascii")
        )
        return Payload(
            metadata={
                "encoding": ENCODING,
                KEY_ID: key_id.encode("ascii"),
            },
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; an unencrypted one is returned as it is."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID, b"")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(self._ciphers)
            raise PayloadDecryptionError(
                f"payload is encrypted under key id {key_id!r}, which is not configured "
                f"(CZ_PAYLOAD_KEYS has {known}); add that key to decrypt it",
                key_id,
            )
        data = payload.data
        if len(data) <= NONCE_BYTES:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} is too short to be AES-GCM ciphertext",
                key_id,
            )
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], raw_id)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} failed authentication: it was altered, "
                "or the key configured under that id is not the one that encrypted it",
                key_id,
            ) from None
        inner = Payload()
        inner.ParseFromString(plain)
        return inner
