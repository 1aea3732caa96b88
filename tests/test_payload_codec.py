"""The AES-GCM payload codec (issue 14): keys, encryption, rotation, refusal of a wrong key,
and, over the real dev server with the project's worker, histories that hold ciphertext only.

What could go wrong: a payload stored in clear (the server's database would then hold the
roster and the evidence), a rotated key set that can no longer read payloads written under
the old key, a wrong or altered key that decodes silently to garbage, an error that does not
say which key is missing.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import Message
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.db import create_schema, make_engine, session_factory
from chuangzheng.bootstrap import connect_temporal, temporal_data_converter
from chuangzheng.payload_codec import (
    ENCODING,
    KEY_ID,
    AesGcmPayloadCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    new_key_text,
    parse_payload_keys,
)
from chuangzheng.settings import Settings
from chuangzheng.temporal_server import data_converter, start_dev_server_env
from domain.actions import SubmitEvidence
from domain.phases import WORKING_PHASES, Phase
from tests.workflows.support import (
    do_current_phase,
    org_plan,
    organisation,
    secretary,
    start_campaign,
)
from worker import build_worker
from workflows.contracts import CampaignResult
from workflows.organisation import OrganisationCampaignWorkflow

KEY_A, KEY_B, KEY_C = new_key_text(), new_key_text(), new_key_text()


def codec(keys: str) -> AesGcmPayloadCodec:
    return AesGcmPayloadCodec(parse_payload_keys(keys))


def plain(text: str) -> Payload:
    (payload,) = data_converter().payload_converter.to_payloads([text])
    return payload


# ----- keys -----


def test_keys_parse_in_order_and_the_first_encrypts() -> None:
    keys = parse_payload_keys(f" k2026:{KEY_B} , k2025:{KEY_A} ")
    assert [key.key_id for key in keys] == ["k2026", "k2025"]
    assert keys[0].key == base64.b64decode(KEY_B)
    assert codec(f"k2026:{KEY_B},k2025:{KEY_A}").encrypting_key_id == "k2026"
    assert parse_payload_keys("") == ()
    assert KEY_A not in repr(keys)  # key material never in a repr (logs, tracebacks)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (KEY_A, "not 'id:base64key'"),
        (f":{KEY_A}", "not 'id:base64key'"),
        (f"a b:{KEY_A}", "may hold only"),
        ("a:not*base64", "not valid base64"),
        (f"a:{base64.b64encode(os.urandom(20)).decode()}", "has 20 bytes"),
        (f"a:{KEY_A},a:{KEY_B}", "twice"),
    ],
    # Named, not made from the random keys: pytest-xdist needs the same ids on every worker.
    ids=["bare-key", "empty-id", "space-in-id", "not-base64", "20-bytes", "id-twice"],
)
def test_a_bad_key_list_is_refused_without_echoing_keys(value: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message) as refused:
        parse_payload_keys(value)
    assert KEY_A not in str(refused.value) and KEY_B not in str(refused.value)


def test_a_codec_needs_a_key() -> None:
    with pytest.raises(PayloadKeyError, match="at least one key"):
        AesGcmPayloadCodec(())


# ----- one payload -----


async def test_a_payload_round_trips_and_its_ciphertext_hides_it() -> None:
    original = plain("青石镇柳树村党支部 org-secret-1")
    box = codec(f"a:{KEY_A}")
    (sealed,) = await box.encode([original])
    (again,) = await box.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"a"
    assert "柳树村".encode() not in sealed.data and b"org-secret-1" not in sealed.data
    assert sealed.data != again.data  # a fresh nonce each time
    assert await box.decode([sealed]) == [original]


async def test_rotation_decrypts_old_payloads_and_encrypts_under_the_new_key() -> None:
    (old,) = await codec(f"a:{KEY_A}").encode([plain("旧密钥")])
    rotated = codec(f"b:{KEY_B},a:{KEY_A}")
    assert await rotated.decode([old]) == [plain("旧密钥")]
    (new,) = await rotated.encode([plain("新密钥")])
    assert new.metadata[KEY_ID] == b"b"


async def test_an_unknown_key_id_fails_naming_it() -> None:
    (sealed,) = await codec(f"a:{KEY_A}").encode([plain("x")])
    with pytest.raises(PayloadDecryptionError, match=r"key id 'a'.*not configured") as failed:
        await codec(f"b:{KEY_B}").decode([sealed])
    assert failed.value.key_id == "a"


async def test_a_wrong_key_under_the_right_id_or_altered_bytes_fail_authentication() -> None:
    (sealed,) = await codec(f"a:{KEY_A}").encode([plain("x")])
    with pytest.raises(PayloadDecryptionError, match="key id 'a' failed authentication"):
        await codec(f"a:{KEY_B}").decode([sealed])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec(f"a:{KEY_A}").decode([flipped])
    # Relabelled under another configured id: the id is authenticated data, so it fails too.
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID] = b"b"
    with pytest.raises(PayloadDecryptionError, match="key id 'b' failed authentication"):
        await codec(f"a:{KEY_A},b:{KEY_A}").decode([relabelled])


async def test_an_unencrypted_payload_passes_through() -> None:
    # Workflows started before encryption was turned on keep running.
    original = plain("明文")
    assert await codec(f"a:{KEY_A}").decode([original]) == [original]


def test_the_bootstrap_converter_has_the_codec_only_when_encryption_is_on() -> None:
    off = Settings(environment="test", secret_key="t" * 40)
    assert temporal_data_converter(off).payload_codec is None
    on = Settings(
        environment="test", secret_key="t" * 40, payload_encryption=True, payload_keys=f"a:{KEY_A}"
    )
    converter = temporal_data_converter(on)
    assert isinstance(converter.payload_codec, AesGcmPayloadCodec)
    # Pydantic models still convert (the project's converter underneath).
    assert converter.payload_converter is not None
    assert type(converter.payload_converter) is type(data_converter().payload_converter)


# ----- over the real dev server, the project's worker -----


def _payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload inside ``message``, with its path (``.events[3].…[key]``)."""
    if isinstance(message, Payload):
        yield path, message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        where = f"{path}.{descriptor.name}"
        if descriptor.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from _payloads(item, f"{where}[{key}]")
        elif isinstance(value, Message):
            yield from _payloads(value, where)
        else:  # a repeated field of messages
            for index, item in enumerate(value):
                yield from _payloads(item, f"{where}[{index}]")


def _may_be_clear(path: str) -> bool:
    """Payloads that stay readable on purpose: search attributes (the server indexes ids,
    phase and light), and the SDK's own marker bookkeeping (patch ids; a local activity's
    sequence number, type and completion time; its result is under ``result``, encrypted)."""
    return "search_attributes" in path or path.endswith(
        ("details[data].payloads[0]", "details[patch-data].payloads[0]")
    )


def _stored(history: History) -> list[Payload]:
    """The payloads of ``history`` that must be encrypted; fails on one that is not."""
    found = []
    for path, payload in _payloads(history):
        if _may_be_clear(path):
            continue
        assert payload.metadata.get("encoding") == ENCODING, (path, payload)
        found.append(payload)
    return found


async def _raw_history(client: Client, workflow_id: str) -> History:
    """The history as the server stores it: nothing decoded."""
    history = History()
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        history.events.append(event)
    return history


def _settings(address: str, keys: str) -> Settings:
    return Settings(
        environment="test",
        secret_key="t" * 40,
        temporal_address=address,
        payload_encryption=True,
        payload_keys=keys,
    )


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    create_schema(engine)
    return session_factory(engine)


async def test_histories_hold_ciphertext_rotation_works_and_a_wrong_key_fails(
    sessions: sessionmaker[Session],
) -> None:
    env = await start_dev_server_env()
    try:
        address = env.client.service_client.config.target_host
        # env.client has the project's converter without a codec: it reads what is stored.
        raw_reader = env.client
        task_queue = f"codec-{uuid.uuid4()}"
        org = organisation("org-codec-1")
        round_id = f"r-codec-{uuid.uuid4().hex[:6]}"
        plan = org_plan(org, await env.get_current_time(), round_id=round_id)

        # Key A only: start the campaign and do the first phase (Updates with evidence).
        client_a = await connect_temporal(_settings(address, f"a:{KEY_A}"))
        async with build_worker(client_a, task_queue=task_queue, sessions=sessions):
            handle = await start_campaign(client_a, task_queue, plan)
            await do_current_phase(handle, plan, await env.get_current_time())
            # A refusal's reason is encrypted in transit too, and still reaches the caller
            # (the API turns it into a 4xx with the reason).
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(
                    OrganisationCampaignWorkflow.submit_evidence,
                    SubmitEvidence(actor=secretary(org), step_id="no-such-step", values={}),
                )
            assert isinstance(refused.value.cause, ApplicationError)
            assert refused.value.cause.message not in ("", "Encoded failure")
            assert refused.value.cause.type
        history = await _raw_history(raw_reader, handle.id)
        stored = _stored(history)
        assert len(stored) > 10
        assert {p.metadata[KEY_ID] for p in stored} == {b"a"}
        serialized = history.SerializeToString()
        for secret in (org.name, org.secretary, org.instructor, plan.phases[0].steps[0].name):
            assert secret.encode() not in serialized, secret

        # Rotated to B (A kept for reading): the same workflow continues to its end.
        client_b = await connect_temporal(_settings(address, f"b:{KEY_B},a:{KEY_A}"))
        handle_b = client_b.get_workflow_handle_for(OrganisationCampaignWorkflow.run, handle.id)
        async with build_worker(client_b, task_queue=task_queue, sessions=sessions):
            for _ in WORKING_PHASES[1:]:
                await do_current_phase(handle_b, plan, await env.get_current_time())
            result = await asyncio.wait_for(handle_b.result(), timeout=120)
            assert isinstance(result, CampaignResult)
            assert result.phase is Phase.COMPLETED

            rotated = _stored(await _raw_history(raw_reader, handle.id))
            assert {p.metadata[KEY_ID] for p in rotated} == {b"a", b"b"}
            assert rotated[-1].metadata[KEY_ID] == b"b"  # the result, written after rotation

            # Key B is unknown to a client with C only; a different key under the id "b"
            # fails authentication. Both say which key id.
            client_c = await connect_temporal(_settings(address, f"c:{KEY_C}"))
            with pytest.raises(PayloadDecryptionError, match=r"key id 'b'.*not configured"):
                await client_c.get_workflow_handle(handle.id).result()
            client_wrong = await connect_temporal(_settings(address, f"b:{KEY_C}"))
            with pytest.raises(PayloadDecryptionError, match="key id 'b' failed authentication"):
                await client_wrong.get_workflow_handle(handle.id).result()
    finally:
        await env.shutdown()
