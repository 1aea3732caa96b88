"""Text hygiene for what people type or paste: names, ids and free text.

Text copied from web pages, chat messages and word processors carries characters nobody
sees: zero-width spaces and joiners (U+200B–U+200D), byte-order marks (U+FEFF), word joiners
(U+2060), ideographic spaces (U+3000). Kept, they make two look-alike strings different
(``王二`` and ``王二\\u200b`` became two 指导员 accounts) and let "nothing" pass a
"non-empty" check. Full-width letters and digits (``Ｍ００１``) do the same to ids.

* :func:`clean_id` for ids (组织编号, 党员编号): NFKC, so full-width and other compatibility
  forms read as their ASCII selves; invisible characters removed; trimmed.
* :func:`clean_name` for people and places (书记, 指导员, 乡镇, 党员姓名): canonical
  composition (NFC), full-width ASCII letters and digits folded, invisible characters
  removed, trimmed. Full NFKC is not used: it would also turn the full-width brackets and
  punctuation of Chinese names (``城关镇（开发区）``) into ASCII, renaming every township and
  account that has them on the next import.
* :func:`clean_text` for other single-line text kept as written (组织名称): NFC, invisible
  characters removed, trimmed; the width is the writer's (an organisation's name may be
  hashed into its id, ``derive_org_id``, and must not change under an old roster).
* :func:`visible_text` / :func:`visible_length` / :func:`is_blank` for the "non-empty" and
  minimum-length checks of free text (evidence, briefings, commitments, reasons): they
  judge what a reader sees without changing what is stored.
* :func:`free_text_problem` is the one rule for what people write (承诺, 申报事迹, reasons,
  titles, findings): direction overrides and control characters refused, then at least
  ``minimum`` visible characters. Domain checks call it with their own wording;
  request models use it through ``Annotated[str, Visible(n)]`` (:class:`Visible`), which
  answers with the same Chinese reasons and keeps ``minLength`` in the JSON schema, so
  pydantic's ``min_length`` (which counts zero-width characters as written) is not the
  rule anywhere.

Invisible format characters (Unicode category Cf, plus fillers that draw nothing) are
removed rather than refused: a zero-width joiner pasted inside a Chinese name is an
accident, and the person meant is the one without it. Bidirectional embeddings, overrides
and isolates (U+202A–U+202E, U+2066–U+2069) and control characters (other than tab and line
breaks) are refused instead (:class:`TextRefused`): a right-to-left override reorders what
is displayed, so it can disguise one name or id as another, and removing it would silently
accept a text whose author meant it to read differently from what it is.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# Embeddings, overrides (U+202A–U+202E) and isolates (U+2066–U+2069): they reorder display.
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# Characters outside category Cf that still draw nothing (Default_Ignorable_Code_Point or
# blank fillers): the combining grapheme joiner, the Hangul fillers, the Mongolian free
# variation selectors, the variation selectors, the Braille blank.
_FILLERS = frozenset(
    chr(c)
    for c in (
        0x034F,
        0x115F,
        0x1160,
        0x17B4,
        0x17B5,
        *range(0x180B, 0x1810),
        0x2800,
        0x3164,
        *range(0xFE00, 0xFE10),
        0xFFA0,
        *range(0xE0100, 0xE01F0),
    )
)
# Tab and line breaks are whitespace a cell or a text may hold; other controls are not.
_ALLOWED_CONTROLS = frozenset("\t\n\r")
# Full-width ASCII letters and digits (U+FF10–U+FF19, U+FF21–U+FF3A, U+FF41–U+FF5A).
_WIDTH_FOLD = {
    c: c - 0xFEE0 for c in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))
}

#: Reasons of :class:`TextRefused` (Chinese, shown to the user).
BIDI_REASON = "含有改变文字显示方向的控制字符（如 U+202E），可能掩盖真实内容，请删除后重新填写"
CONTROL_REASON = "含有不可见的控制字符，请删除后重新填写"
#: The reason of free text a reader sees nothing of (:func:`too_short_reason` of 1).
BLANK_REASON = "不能为空"


class TextRefused(ValueError):
    """A text holding characters that are refused rather than removed; ``reason`` (Chinese)
    says which. A ``ValueError``, so a pydantic validator may raise it as is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_invisible(ch: str) -> bool:
    """Whether the character ``ch`` draws nothing and is not whitespace: a format character
    (category Cf, e.g. U+200B, U+200D, U+2060, U+FEFF, U+00AD) or a filler."""
    return ch in _FILLERS or unicodedata.category(ch) == "Cf"


def _is_hidden(ch: str) -> bool:
    """Invisible, or a control character other than tab and line breaks."""
    if ch in _ALLOWED_CONTROLS:
        return False
    return is_invisible(ch) or unicodedata.category(ch) == "Cc"


def refusal(text: str) -> str | None:
    """Why ``text`` is refused (:data:`BIDI_REASON`, :data:`CONTROL_REASON`), or None."""
    for ch in text:
        if ch in _BIDI_CONTROLS:
            return BIDI_REASON
    for ch in text:
        if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) == "Cc":
            return CONTROL_REASON
    return None


def _check(text: str) -> None:
    reason = refusal(text)
    if reason is not None:
        raise TextRefused(reason)


def _without_invisible(text: str) -> str:
    return "".join(ch for ch in text if not is_invisible(ch))


def clean_text(text: str) -> str:
    """``text`` trimmed (whitespace including U+3000), its invisible format characters
    removed, in NFC; raises :class:`TextRefused` for bidirectional or control characters.
    The width of letters and digits is kept (see the module's note)."""
    _check(text)
    return unicodedata.normalize("NFC", _without_invisible(text)).strip()


def clean_name(text: str) -> str:
    """A person's or place's name as stored and compared: :func:`clean_text`, with
    full-width ASCII letters and digits folded to ASCII (``Ａ１`` → ``A1``); Chinese
    punctuation (``（）``, ``·``) is kept as written."""
    return clean_text(text).translate(_WIDTH_FOLD)


def clean_id(text: str) -> str:
    """An id as stored and compared: NFKC (full-width and other compatibility forms become
    their plain selves: ``Ｍ００１`` → ``M001``), invisible format characters removed,
    trimmed; raises :class:`TextRefused` for bidirectional or control characters. Whether
    what is left is a valid id (no spaces, no ``/``…) is the caller's rule."""
    _check(text)
    return unicodedata.normalize("NFKC", _without_invisible(text)).strip()


def visible_text(text: str) -> str:
    """What a reader sees of ``text``: without invisible format characters, fillers and
    control characters (tab and line breaks kept), trimmed. For "non-empty" checks of free
    text (``if not visible_text(value): 请填写…``); the stored text needs no change."""
    return "".join(ch for ch in text if not _is_hidden(ch)).strip()


def visible_length(text: str) -> int:
    """How many characters of ``text`` a reader sees: neither whitespace (U+3000 included)
    nor invisible. For minimum-length checks (``visible_length(value) < 10``), so padding
    with spaces or zero-width characters does not reach the minimum."""
    return sum(1 for ch in text if not ch.isspace() and not _is_hidden(ch))


def is_blank(text: str) -> bool:
    """Whether a reader sees nothing in ``text`` (empty, whitespace, invisible characters)."""
    return visible_length(text) == 0


def too_short_reason(minimum: int) -> str:
    """The reason for fewer than ``minimum`` visible characters: :data:`BLANK_REASON` for a
    minimum of one, else the minimum and how it is counted."""
    if minimum <= 1:
        return BLANK_REASON
    return f"内容过短，至少 {minimum} 个字（空格和不可见字符不计）"


def free_text_problem(text: str, *, minimum: int = 1, short: str | None = None) -> str | None:
    """Why ``text`` is refused as free text a person wrote, or None when it is fine.

    First what it holds: a direction override or isolate (:data:`BIDI_REASON`) or a
    control character other than tab and line breaks (:data:`CONTROL_REASON`); then what a
    reader sees of it: fewer than ``minimum`` visible characters (:func:`visible_length`:
    whitespace and zero-width characters do not count) is ``short``, by default
    :func:`too_short_reason`. The stored text is the caller's business (trimmed, as
    written); this only judges it."""
    reason = refusal(text)
    if reason is not None:
        return reason
    if visible_length(text) < minimum:
        return short if short is not None else too_short_reason(minimum)
    return None


@dataclass(frozen=True)
class Visible:
    """pydantic metadata for free text in request models: ``Annotated[str, Visible(4)]``
    refuses what :func:`free_text_problem` refuses (``minimum`` visible characters), with
    its Chinese reason as the error's message (error types ``text_refused`` and
    ``text_too_short``), and documents ``minLength`` in the JSON schema. Use it instead of
    ``Field(min_length=…)``; maximum lengths stay ``Field(max_length=…)`` (what is stored).
    """

    minimum: int = 1

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        target["minLength"] = max(int(target.get("minLength", 0)), self.minimum)
        return json_schema

    def validate(self, value: str) -> str:
        """``value`` unchanged, or a ``PydanticCustomError`` with the Chinese reason."""
        reason = refusal(value)
        if reason is not None:
            raise PydanticCustomError("text_refused", reason)
        if visible_length(value) < self.minimum:
            raise PydanticCustomError(
                "text_too_short", too_short_reason(self.minimum), {"min_length": self.minimum}
            )
        return value


__all__ = [
    "BIDI_REASON",
    "BLANK_REASON",
    "CONTROL_REASON",
    "TextRefused",
    "Visible",
    "clean_id",
    "clean_name",
    "clean_text",
    "free_text_problem",
    "is_blank",
    "is_invisible",
    "refusal",
    "too_short_reason",
    "visible_length",
    "visible_text",
]


def own_file_name(filename: str | None) -> str:
    """A file's own name as sent: the last segment after ``/`` or ``\\`` (browsers on
    Windows send ``C:\\fakepath\\x.pdf``; ``Path.name`` splits on ``/`` only, so
    ``..\\..\\win.pdf`` would be kept whole and a client's folders stored and shown).
    Whether it may be kept (length, direction overrides: :func:`refusal`) is the caller's
    rule."""
    return (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
