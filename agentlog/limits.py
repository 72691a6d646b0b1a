"""Size limits of the event contract, in one place.

Avro has no length constraint, so the contract's ``.avsc`` files carry the *kind* of
each string field in a custom attribute, ``"agentlog.limit"`` (``"id"`` when absent,
``"short"`` or ``"text"``); the code generator turns kinds into pydantic constraints,
so that every model validates them: at the edge (the SDK and the CLI refuse a model
that breaks one, naming the field) and in the processors (which validate every input
and dead-letter what breaks one). Lists and maps hold at most :data:`MAX_ITEMS`
entries unless their field says otherwise with ``"agentlog.maxItems"``. Custom
attributes are not part of Avro's canonical form: they change no fingerprint.

On top of the fields, one encoded record is at most :data:`MAX_RECORD_BYTES`, which
leaves room under the broker's 1 MB message limit for the headers and for the
processors' answers, which quote short fields only.
"""

from __future__ import annotations

from typing import Final

from agentlog.errors import PayloadError

LIMIT_ATTRIBUTE: Final = "agentlog.limit"
"""The ``.avsc`` field attribute naming a string field's kind."""
MAX_ITEMS_ATTRIBUTE: Final = "agentlog.maxItems"
"""The ``.avsc`` field attribute overriding :data:`MAX_ITEMS` for a list or a map."""

MAX_CHARS: Final = {
    "id": 256,
    "short": 1_024,
    "text": 16_384,
}
"""Characters a string of each kind may hold: ids and names, titles and list items, free text."""

MAX_ITEMS: Final = 64
"""Entries a list or a map may hold by default."""

MAX_RECORD_BYTES: Final = 512 * 1024
"""Bytes one encoded record may take (Avro body plus the encoding's header)."""

DEAD_LETTER_KEEP_BYTES: Final = 64 * 1024
"""Of a record too large to be dead-lettered whole, the bytes of its value (and key) that are kept."""


def record_size_problem(size: int) -> str | None:
    """Why an encoded record of ``size`` bytes breaks the contract, or ``None``."""
    if size <= MAX_RECORD_BYTES:
        return None
    return f"the encoded record is {size:,} bytes; the contract allows {MAX_RECORD_BYTES:,}"


def check_record_size(avro_name: str, size: int, line: int | None = None) -> None:
    """Raise :class:`~agentlog.errors.PayloadError` when an encoded record of ``avro_name`` is too large."""
    problem = record_size_problem(size)
    if problem is not None:
        raise PayloadError(avro_name.rsplit(".", 1)[-1], [("<event>", problem)], line)


QUOTE_CHARS: Final = 1_000
"""Characters of an input's free text that a decision's message quotes at most."""


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` for quoting in a generated message: cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
