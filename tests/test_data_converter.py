"""The project's data converter: pydantic's, with its converters built once per process.

The SDK builds a ``DataConverter`` per workflow activation, and each instantiates the
payload converter class: :class:`SharedPydanticPayloadConverter` makes that instantiation
reuse the first instance's encoding converters (and so one type-adapter cache), where
``PydanticPayloadConverter`` built them, cache included, for every activation.
"""

from __future__ import annotations

from temporalio.converter import DataConverter

from chuangzheng.temporal_server import SharedPydanticPayloadConverter, data_converter
from domain.actions import SubmitEvidence
from domain.state import Actor


def _per_activation() -> DataConverter:
    """A converter as the SDK's worker builds one for an activation: from the class."""
    return DataConverter(payload_converter_class=data_converter().payload_converter_class)


def _pydantic(converter: DataConverter) -> SharedPydanticPayloadConverter:
    """The class's instance inside the SDK's wrapper (which adds its transfer types)."""
    inner = getattr(converter.payload_converter, "_inner_payload_converter", None)
    assert isinstance(inner, SharedPydanticPayloadConverter)
    return inner


def test_a_converter_built_per_activation_shares_the_first_ones_encoding_converters() -> None:
    first, second = _pydantic(_per_activation()), _pydantic(_per_activation())
    assert first is not second
    ours, theirs = first.converters, second.converters
    assert list(ours) == list(theirs)
    # The very same objects, so the JSON converter's type-adapter cache is one.
    assert all(ours[encoding] is theirs[encoding] for encoding in ours)
    assert ours[b"json/plain"]._type_adapter is theirs[b"json/plain"]._type_adapter  # type: ignore[attr-defined]


def test_pydantic_models_still_round_trip_through_a_per_activation_converter() -> None:
    command = SubmitEvidence(
        actor=Actor(user="sec-1", name="书记", role="secretary"),
        step_id="hold_mobilisation_meeting",
        values={"meeting_date": "2026-12-01", "attendance": 12},
        idempotency_key="k-1",
    )
    (payload,) = _per_activation().payload_converter.to_payloads([command])
    (back,) = _per_activation().payload_converter.from_payloads([payload], [SubmitEvidence])
    assert back == command and isinstance(back, SubmitEvidence)
    # Plain values keep their own encodings (null, bytes), as pydantic's converter has them.
    payloads = _per_activation().payload_converter.to_payloads([None, b"\x00\x01", 7])
    encodings = [p.metadata["encoding"] for p in payloads]
    assert encodings == [b"binary/null", b"binary/plain", b"json/plain"]
    assert _per_activation().payload_converter.from_payloads(payloads) == [None, b"\x00\x01", 7]
