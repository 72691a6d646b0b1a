"""Avro binary encoders and decoders compiled, at run time, for one record schema each.

fastavro interprets its parsed schema for every record: a dispatch per field, a validation
per union branch, a call into a stream per value. For our ~25-field events that caps it at
roughly 50k records/s per core. Here, each expanded record schema is turned once into the
source of two Python functions doing exactly that schema's work as straight-line code, which
is ``exec``-ed and cached per fingerprint. For ``agentlog.lifecycle.TokensConsumed``::

    def encode_TokensConsumed(v, prefix=b"", /):
        buf = bytearray(prefix)
        # meta: agentlog.common.Meta
        v1 = v['meta']
        # meta.event_id: uuid
        v2 = v1['event_id']
        s = (str(v2) if isinstance(v2, _UUID) else v2).encode()
        n = len(s)
        buf += _ZIGZAG[n] if n < 8192 else _long(n)
        buf += s
        ...
        # tokens: long
        v10 = v['tokens']
        buf += _ZIGZAG[v10] if -8192 <= v10 < 8192 else _long(v10)
        ...
        return bytes(buf)

    def decode_TokensConsumed(b, p=0, /):
        if b.__class__ is not bytes:
            b = bytes(b)
        try:
            ...
            # tokens: long
            v12 = _SMALL_LONG[b[p]]
            if v12 is None:
                v12, p = _read_long(b, p)
            else:
                p += 1
            ...
            record = {'meta': v1, 'agent_id': v11, 'tokens': v12, 'model': v13}
        except AvroDecodeError:
            raise
        except (IndexError, ValueError, OverflowError, _struct_error) as e:
            raise _malformed('agentlog.lifecycle.TokensConsumed', b, e) from e
        if p != len(b):
            raise _misaligned('agentlog.lifecycle.TokensConsumed', b, p)
        return record

:attr:`Codec.source` shows the whole of it; tracebacks formatted by :mod:`traceback` (logging,
pytest) show its lines.

The encoder returns ``prefix`` + the body fastavro's ``schemaless_writer`` writes, byte for
byte, for every value it takes. Values it does not take make it raise (``KeyError``,
``TypeError``, ``AttributeError``, ``ValueError``, ``OverflowError``): a missing field (which
fastavro fills with the field's default), a union value in tuple notation, a value of the
wrong type. The caller then hands the value to fastavro, which writes it or raises its own
error; :class:`agentlog.serde.Serde` does so. Like fastavro, a naive datetime is read as local
time and an int is taken as is for ``timestamp-micros``; a ``uuid`` is a ``uuid.UUID`` or a str.
One difference is known: for a record that is a union branch, fastavro validates the whole
record to choose the branch, so it refuses a ``bool`` (or an ``int`` outside 32 bits) in an
``int``/``long`` field there, where the encoder writes it as fastavro does outside unions.

The decoder returns what ``fastavro.schemaless_reader(io.BytesIO(body), parsed, None)``
returns (plain dicts, ``uuid.UUID``, aware UTC datetimes, enum symbols as str) and raises
:class:`AvroDecodeError` for input that is not exactly one value of the schema: truncated,
followed by trailing bytes, a union or enum index out of range, a negative length,
invalid UTF-8, a boolean byte other than 0 and 1.

Schemas using anything else (fixed, other logical types, recursive records, unions of two
records or maps, arrays of items that encode to nothing) raise :class:`UnsupportedSchema`
at compile time; :func:`codec_for` then answers ``None`` and the caller uses fastavro.
"""

from __future__ import annotations

import itertools
import linecache
import logging
import struct
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from keyword import iskeyword
from typing import Any, Protocol

from pydantic import BaseModel

from agentlog.schema_store import RecordSchema

log = logging.getLogger(__name__)

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_SMALL = 8192
"""Ints in ``-_SMALL <= i < _SMALL`` (one or two bytes) are encoded by table look-up."""


class AvroDecodeError(ValueError):
    """Bytes that are not exactly one Avro-encoded value of the schema."""


class UnsupportedSchema(Exception):
    """The schema uses a construct this module does not compile; use fastavro for it."""


class Encoder(Protocol):
    """``encode(value, prefix=b"")``: ``prefix`` followed by the Avro binary encoding of ``value``."""

    def __call__(self, value: Mapping[str, Any], prefix: bytes = b"", /) -> bytes: ...


class Decoder(Protocol):
    """``decode(data, pos=0)``: the value encoded in ``data[pos:]``, which it must fill exactly."""

    def __call__(self, data: bytes | bytearray | memoryview, pos: int = 0, /) -> dict[str, Any]: ...


class ModelEncoder(Protocol):
    """``encode_model(model, prefix=b"")``: as :class:`Encoder`, reading a pydantic model's attributes."""

    def __call__(self, value: Any, prefix: bytes = b"", /) -> bytes: ...


@dataclass(frozen=True)
class Codec:
    """The compiled encoders and decoder of one record schema, and their source."""

    full_name: str
    encode: Encoder
    decode: Decoder
    source: str
    encode_model: ModelEncoder
    """The encoder of the record as a model (the events' pydantic classes): the same bytes as ``encode`` of its
    ``model_dump()``, without building that dict (nested records are models, read by attribute)."""


# --- Tables and helpers the generated code calls -------------------------------------------


_VARINT14 = [bytes((z,)) for z in range(0x80)] + [bytes((z & 0x7F | 0x80, z >> 7)) for z in range(0x80, 1 << 14)]
"""Varint (unsigned LEB128) of every 14-bit number."""
_CHUNK14 = [bytes((z & 0x7F | 0x80, z >> 7 | 0x80)) for z in range(1 << 14)]
"""14 bits as two varint bytes, both with the continuation bit: the low part of a longer varint."""
_ZIGZAG = [_VARINT14[(i << 1) ^ (i >> 63)] for i in itertools.chain(range(_SMALL), range(-_SMALL, 0))]
"""``_ZIGZAG[i]`` is the encoding of the long ``i`` for ``-_SMALL <= i < _SMALL`` (negative indices wrap)."""

_SMALL_LONG: tuple[int | None, ...] = tuple((c >> 1) ^ -(c & 1) if c < 0x80 else None for c in range(256))
"""Value of a one-byte varint by its byte; ``None`` for a byte that continues (the varint is longer)."""
_LENGTH = tuple(c >> 1 if c < 0x80 and not c & 1 else -1 for c in range(256))
"""Length (string, bytes) encoded in one byte; -1 for longer or negative ones."""
_BOOLEAN = (False, True) + (None,) * 254

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_pack_float = struct.Struct("<f").pack
_pack_double = struct.Struct("<d").pack
_unpack_float = struct.Struct("<f").unpack_from
_unpack_double = struct.Struct("<d").unpack_from


def _long(n: int) -> bytes:
    """Zig-zag varint of a long too large for ``_ZIGZAG``: 14 bits at a time, by table."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit in a 64-bit Avro long")
    z = (n << 1) ^ (n >> 63)
    if z < 1 << 28:
        return _CHUNK14[z & 0x3FFF] + _VARINT14[z >> 14]
    if z < 1 << 42:
        return _CHUNK14[z & 0x3FFF] + _CHUNK14[z >> 14 & 0x3FFF] + _VARINT14[z >> 28]
    low = _CHUNK14[z & 0x3FFF] + _CHUNK14[z >> 14 & 0x3FFF] + _CHUNK14[z >> 28 & 0x3FFF]
    if z < 1 << 56:  # timestamps of these centuries
        return low + _VARINT14[z >> 42]
    return low + _CHUNK14[z >> 42 & 0x3FFF] + _VARINT14[z >> 56]


def _timestamp_micros(value: Any) -> Any:
    """timestamp-micros of what is not an aware datetime, as fastavro does it.

    A naive datetime is local time (fastavro uses ``time.mktime``); anything else is
    written as it is (an int is the number of microseconds).
    """
    if isinstance(value, datetime) and value.tzinfo is None:
        return int(time.mktime(value.timetuple())) * 1_000_000 + value.microsecond
    return value


def _no_branch(path: str, value: Any) -> TypeError:
    return TypeError(f"{path}: {value!r} (type {type(value).__name__}) matches no branch of the union")


def _read_long(b: bytes, p: int) -> tuple[int, int]:
    """The zig-zag varint at ``b[p]`` and the position after it.

    Unrolled for up to 8 bytes (timestamps take 8), gathering the low and the high 28 bits
    apart: arithmetic on ints below 2**30 is the quick kind in CPython.
    """
    c = b[p]
    low = c & 0x7F
    if c < 0x80:
        return (low >> 1) ^ -(low & 1), p + 1
    c = b[p + 1]
    low |= (c & 0x7F) << 7
    if c < 0x80:
        return (low >> 1) ^ -(low & 1), p + 2
    c = b[p + 2]
    low |= (c & 0x7F) << 14
    if c < 0x80:
        return (low >> 1) ^ -(low & 1), p + 3
    c = b[p + 3]
    low |= (c & 0x7F) << 21
    if c < 0x80:
        return (low >> 1) ^ -(low & 1), p + 4
    c = b[p + 4]
    high = c & 0x7F
    if c < 0x80:
        return (low >> 1 | high << 27) ^ -(low & 1), p + 5
    c = b[p + 5]
    high |= (c & 0x7F) << 7
    if c < 0x80:
        return (low >> 1 | high << 27) ^ -(low & 1), p + 6
    c = b[p + 6]
    high |= (c & 0x7F) << 14
    if c < 0x80:
        return (low >> 1 | high << 27) ^ -(low & 1), p + 7
    c = b[p + 7]
    high |= (c & 0x7F) << 21
    if c < 0x80:
        return (low >> 1 | high << 27) ^ -(low & 1), p + 8
    return _read_long_9_10(b, p)


def _read_long_9_10(b: bytes, p: int) -> tuple[int, int]:
    """A varint of 9 or 10 bytes (or an over-long one: an error)."""
    z = shift = 0
    for q in range(p, p + 10):
        c = b[q]
        z |= (c & 0x7F) << shift
        if c < 0x80:
            return (z >> 1) ^ -(z & 1), q + 1
        shift += 7
    raise AvroDecodeError(f"varint longer than 10 bytes at byte {p}")


def _read_length(b: bytes, p: int) -> tuple[int, int]:
    """A string or bytes length longer than one byte, or a negative one (an error)."""
    n, q = _read_long(b, p)
    if n < 0:
        raise AvroDecodeError(f"negative length {n} at byte {p}")
    return n, q


def _read_count(b: bytes, p: int) -> tuple[int, int]:
    """Item count of an array or map block; a negative count is followed by the block's size, skipped."""
    n = _SMALL_LONG[b[p]]
    if n is None:
        n, p = _read_long(b, p)
    else:
        p += 1
    if n < 0:
        n = -n
        _, p = _read_long(b, p)
    if n > len(b) - p:
        raise AvroDecodeError(f"block of {n} items at byte {p} but only {len(b) - p} bytes left")
    return n, p


def _read_enum(b: bytes, p: int, symbols: tuple[str, ...], path: str) -> tuple[str, int]:
    """An enum symbol whose index takes several bytes, or is out of range (an error)."""
    i, q = _read_long(b, p)
    if not 0 <= i < len(symbols):
        raise AvroDecodeError(f"{path}: enum index {i} at byte {p} is not in 0..{len(symbols) - 1}")
    return symbols[i], q


_new_uuid = uuid.UUID.__new__
_set_attribute = object.__setattr__
_UUID_SAFETY_UNKNOWN = uuid.SafeUUID.unknown  # looking an enum member up costs more than the rest here


def uuid_of_int(number: int) -> uuid.UUID:
    """``uuid.UUID(int=number)`` for a ``number`` known to be 128 bits, without its argument checks."""
    u = _new_uuid(uuid.UUID)
    _set_attribute(u, "int", number)
    _set_attribute(u, "is_safe", _UUID_SAFETY_UNKNOWN)
    return u


def _uuid(raw: bytes) -> uuid.UUID:
    """``uuid.UUID(raw.decode())``, quicker for the usual 36-character form.

    Does what ``UUID.__init__(hex)`` does (drop the dashes, 32 hex digits) and sets the
    slots as it does; anything else goes through ``UUID()`` itself.
    """
    digits = raw.replace(b"-", b"")
    if len(digits) == 32:
        try:
            number = int(digits, 16)
        except ValueError:
            pass
        else:
            return uuid_of_int(number)
    return uuid.UUID(raw.decode())


def _bad_boolean(b: bytes, p: int, path: str) -> AvroDecodeError:
    return AvroDecodeError(f"{path}: boolean byte {b[p]} at byte {p} is neither 0 nor 1")


def _bad_union(b: bytes, p: int, path: str, branches: int) -> AvroDecodeError:
    index, _ = _read_long(b, p)
    return AvroDecodeError(f"{path}: union index {index} at byte {p} is not in 0..{branches - 1}")


def _malformed(name: str, b: bytes, error: Exception) -> AvroDecodeError:
    if isinstance(error, IndexError):
        return AvroDecodeError(f"{name}: input ends early, after {len(b)} bytes")
    if isinstance(error, UnicodeDecodeError):
        return AvroDecodeError(f"{name}: a string is not valid UTF-8, or is cut short: {error}")
    return AvroDecodeError(f"{name}: {type(error).__name__}: {error}")


def _misaligned(name: str, b: bytes, p: int) -> AvroDecodeError:
    if p > len(b):
        return AvroDecodeError(f"{name}: input ends early, needs at least {p} bytes, has {len(b)}")
    return AvroDecodeError(f"{len(b) - p} trailing bytes after {name}")


_GLOBALS: dict[str, Any] = {
    "AvroDecodeError": AvroDecodeError,
    "_UUID": uuid.UUID,
    "_datetime": datetime,
    "_struct_error": struct.error,
    "_ZIGZAG": _ZIGZAG,
    "_long": _long,
    "_EPOCH": _EPOCH,
    "_MICROSECOND": _MICROSECOND,
    "_timestamp_micros": _timestamp_micros,
    "_pack_float": _pack_float,
    "_pack_double": _pack_double,
    "_no_branch": _no_branch,
    "_SMALL_LONG": _SMALL_LONG,
    "_LENGTH": _LENGTH,
    "_BOOLEAN": _BOOLEAN,
    "_unpack_float": _unpack_float,
    "_unpack_double": _unpack_double,
    "_read_long": _read_long,
    "_read_length": _read_length,
    "_read_count": _read_count,
    "_read_enum": _read_enum,
    "_uuid": _uuid,
    "_bad_boolean": _bad_boolean,
    "_bad_union": _bad_union,
    "_malformed": _malformed,
    "_misaligned": _misaligned,
    "_Model": BaseModel,
}
"""What the generated code refers to; the constants of a schema (enum tables) are added to a copy."""


# --- The generator ----------------------------------------------------------------------------


class _Source:
    """Python source being written: indented lines, fresh local names, and the constants it uses."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.depth = 0
        self.namespace = namespace
        self._counter = itertools.count(1)

    def __call__(self, line: str) -> None:
        if "\n" in line or "\r" in line:
            raise UnsupportedSchema(f"a name or path with a line break: {line!r}")
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.depth += 1
        yield
        self.depth -= 1

    def local(self, prefix: str) -> str:
        return f"{prefix}{next(self._counter)}"

    def constant(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name


_METHOD_OF_KIND = {"int": "integer", "long": "integer", "float": "real", "double": "real"}
_METHOD_OF_KIND |= {"string": "text", "uuid": "text", "bytes": "text", "array": "container", "map": "container"}


class _Compiler:
    """Walks a schema, resolving named types as Avro does, and writes code per kind of type.

    Subclasses write the code: ``value(schema, x, path, namespace)`` dispatches on the kind
    of ``schema`` to the method of that name (``int`` and ``long`` share ``integer``; ``string``,
    ``uuid`` and ``bytes`` share ``text``, ``float`` and ``double`` share ``real``).
    """

    def __init__(self, source: _Source) -> None:
        self.src = source
        self.named: dict[str, Any] = {}
        self.inlining: set[str] = set()

    def resolve(self, schema: Any, namespace: str) -> tuple[Any, str, str]:
        """``(definition, kind, namespace)`` of a schema; a name refers to a type defined before."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            if full not in self.named and schema in self.named:
                full = schema  # a short name of the null namespace, referred to from inside a namespace
            if full not in self.named:
                raise UnsupportedSchema(f"reference to undefined type {schema!r}")
            if full in self.inlining:
                raise UnsupportedSchema(f"recursive type {full}")
            return self.named[full], self.named[full]["type"], full.rpartition(".")[0]
        if isinstance(schema, str):
            return schema, schema, namespace
        if isinstance(schema, list):
            return schema, "union", namespace
        kind = schema["type"]
        if isinstance(kind, (dict, list)):
            return self.resolve(kind, namespace)
        if kind in ("record", "enum", "fixed", "error"):
            name = schema["name"]
            full = name if "." in name else f"{schema.get('namespace', namespace)}.{name}".lstrip(".")
            self.named[full] = schema
            namespace = full.rpartition(".")[0]
        logical = schema.get("logicalType")
        if logical is None and kind in _PRIMITIVES | {"record", "enum", "array", "map"}:
            return schema, kind, namespace
        if (kind, logical) == ("string", "uuid"):
            return schema, "uuid", namespace
        if (kind, logical) == ("long", "timestamp-micros"):
            return schema, "timestamp_micros", namespace
        raise UnsupportedSchema(f"type {kind!r} with logicalType {logical!r}")

    def value(self, schema: Any, x: str, path: str, namespace: str) -> None:
        """Write the code for one value of ``schema``, held in (or read into) the local ``x``."""
        definition, kind, namespace = self.resolve(schema, namespace)
        method = getattr(self, _METHOD_OF_KIND.get(kind, kind))
        method(definition, kind, x, path, namespace)

    @contextmanager
    def fields(self, schema: Any, namespace: str) -> Iterator[list[tuple[str, Any]]]:
        """Name and type of each field of a record, which counts as being inlined meanwhile."""
        full = f"{namespace}.{schema['name'].rpartition('.')[2]}".lstrip(".")
        self.inlining.add(full)
        yield [(field["name"], field["type"]) for field in schema["fields"]]
        self.inlining.discard(full)

    def may_be_empty(self, schema: Any, namespace: str) -> bool:
        """Whether a value of ``schema`` can encode to no bytes at all (null, a record of such fields)."""
        schema, kind, namespace = self.resolve(schema, namespace)
        if kind == "record":
            with self.fields(schema, namespace) as fields:
                return all(self.may_be_empty(field_type, namespace) for _, field_type in fields)
        return kind == "null"


class _EncoderCompiler(_Compiler):
    """Writes statements appending the encoding of a local variable to ``buf``."""

    def null(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """fastavro writes nothing, whatever the value."""

    def boolean(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        self.src(f'buf += b"\\x01" if {x} else b"\\x00"')

    def integer(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        self.src(f"buf += _ZIGZAG[{x}] if -{_SMALL} <= {x} < {_SMALL} else _long({x})")

    def timestamp_micros(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        src = self.src
        with src.block("try:"):
            src(f"{x} = ({x} - _EPOCH) // _MICROSECOND")
        with src.block("except TypeError:  # not an aware datetime"):
            src(f"{x} = _timestamp_micros({x})")
        self.integer(schema, "long", x, path, namespace)

    def real(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        self.src(f"buf += _pack_{kind}({x})")

    def text(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """A length, then the UTF-8 of a string (of a UUID's 36-character form) or the bytes."""
        src = self.src
        if kind == "string":
            src(f"s = {x}.encode()")
        elif kind == "uuid":
            src(f"s = (str({x}) if isinstance({x}, _UUID) else {x}).encode()")
        else:
            src(f"s = {x}")
        src("n = len(s)")
        src(f"buf += _ZIGZAG[n] if n < {_SMALL} else _long(n)")
        src("buf += s")

    def enum(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """The symbol's index, by a dict symbol → encoded index."""
        table = {symbol: _ZIGZAG[i] for i, symbol in enumerate(schema["symbols"])}
        self.src(f"buf += {self.src.constant('ENUM', table)}[{x}]")

    def record(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """Each field in turn."""
        src = self.src
        with self.fields(schema, namespace) as fields:
            for name, field_type in fields:
                field = src.local("v")
                src(f"# {path}{name}: {_describe(field_type)}")
                src(f"{field} = {x}[{name!r}]")
                self.value(field_type, field, f"{path}{name}.", namespace)

    def container(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """Arrays and maps: one block holding every item, then the empty block that ends them."""
        src = self.src
        item = src.local("i")
        src(f"n = len({x})")
        with src.block("if n:"):
            src(f"buf += _ZIGZAG[n] if n < {_SMALL} else _long(n)")
            if kind == "array":
                with src.block(f"for {item} in {x}:"):
                    self.value(schema["items"], item, f"{path}[].", namespace)
            else:
                key = src.local("k")
                with src.block(f"for {key}, {item} in {x}.items():"):
                    self.value("string", key, f"{path}{{key}}.", namespace)
                    self.value(schema["values"], item, f"{path}{{}}.", namespace)
        src('buf += b"\\x00"')

    def union(self, schema: list[Any], kind: str, x: str, path: str, namespace: str) -> None:
        """The index of the branch the value's Python type selects, then the value.

        fastavro picks the first branch the value validates against, except that a number
        matching ``float`` goes to a later ``double`` if there is one, and that among records
        it takes the one with most matching fields. Branches are told apart by Python type
        here, so two records or maps in one union are not compiled.
        """
        src = self.src
        branches = [(i, *self.resolve(branch, namespace)) for i, branch in enumerate(schema)]
        kinds = [branch_kind for _, _, branch_kind, _ in branches]
        if len(branches) > 64 or "union" in kinds:
            raise UnsupportedSchema(f"{path}: a union of more than 64 branches, or holding a union")
        if sum(k in ("record", "map") for k in kinds) > 1 or kinds.count("array") > 1:
            raise UnsupportedSchema(f"{path}: union {kinds} has two branches taking the same Python type")
        keyword = "if"
        for index, branch, branch_kind, _ in branches:
            test = self.branch_test(branch, branch_kind, x)
            chosen = kinds.index("double", index) if branch_kind == "float" and "double" in kinds[index:] else index
            _, chosen_branch, _, chosen_namespace = branches[chosen]
            with src.block(f"{keyword} {test}:"):
                src(f"buf += {_ZIGZAG[chosen]!r}  # {_describe(schema[chosen])}")
                self.value(chosen_branch, x, path, chosen_namespace)
            keyword = "elif"
        with src.block("else:"):
            src(f"raise _no_branch({path.rstrip('.')!r}, {x})")

    def branch_test(self, schema: Any, kind: str, x: str) -> str:
        """A Python expression true when fastavro would pick a branch of this kind for ``x``."""
        not_bool = f"{x} is not True and {x} is not False"
        long_ = f"isinstance({x}, int) and {not_bool} and {_LONG_MIN} <= {x} <= {_LONG_MAX}"
        tests = {
            "null": f"{x} is None",
            "boolean": f"{x} is True or {x} is False",
            "int": f"isinstance({x}, int) and {not_bool} and {_INT_MIN} <= {x} <= {_INT_MAX}",
            "long": long_,
            "timestamp_micros": f"isinstance({x}, _datetime) or ({long_})",
            "float": f"isinstance({x}, (int, float)) and {not_bool}",
            "double": f"isinstance({x}, (int, float)) and {not_bool}",
            "string": f"isinstance({x}, str)",
            "uuid": f"isinstance({x}, (str, _UUID))",
            "bytes": f"isinstance({x}, (bytes, bytearray))",
            "array": f"isinstance({x}, list)",  # a tuple is fastavro's (branch name, value) notation
            "map": f"isinstance({x}, dict)",
            "record": f"isinstance({x}, dict)",
        }
        if kind == "enum":
            return f"{x} in {self.src.constant('SYMBOLS', frozenset(schema['symbols']))}"
        return tests[kind]


class _ModelEncoderCompiler(_EncoderCompiler):
    """As :class:`_EncoderCompiler`, for a record held as a model: fields by attribute, record branches by class."""

    def record(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        src = self.src
        with self.fields(schema, namespace) as fields:
            for name, field_type in fields:
                if not name.isidentifier() or iskeyword(name):
                    raise UnsupportedSchema(f"{path}{name}: not a Python attribute name")
                field = src.local("v")
                src(f"# {path}{name}: {_describe(field_type)}")
                src(f"{field} = {x}.{name}")
                self.value(field_type, field, f"{path}{name}.", namespace)

    def branch_test(self, schema: Any, kind: str, x: str) -> str:
        if kind == "record":
            return f"isinstance({x}, _Model)"
        return super().branch_test(schema, kind, x)


class _DecoderCompiler(_Compiler):
    """Writes statements reading one value at position ``p`` of ``b`` into a local variable."""

    def null(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        self.src(f"{x} = None")

    def boolean(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        src = self.src
        src(f"{x} = _BOOLEAN[b[p]]")
        with src.block(f"if {x} is None:"):
            src(f"raise _bad_boolean(b, p, {_where(path)!r})")
        src("p += 1")

    def integer(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """One byte by table, longer varints by ``_read_long``."""
        src = self.src
        src(f"{x} = _SMALL_LONG[b[p]]")
        with src.block(f"if {x} is None:"):
            src(f"{x}, p = _read_long(b, p)")
        with src.block("else:"):
            src("p += 1")

    def timestamp_micros(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """As fastavro: the epoch (UTC) plus that many microseconds."""
        self.integer(schema, "long", x, path, namespace)
        self.src(f"{x} = _EPOCH + _MICROSECOND * {x}")

    def real(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        self.src(f"{x} = _unpack_{kind}(b, p)[0]")
        self.src(f"p += {4 if kind == 'float' else 8}")

    def text(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """A length, then that many bytes; a string past the end is caught by the final position check."""
        src = self.src
        src("n = _LENGTH[b[p]]")
        with src.block("if n < 0:"):
            src("n, p = _read_length(b, p)")
        with src.block("else:"):
            src("p += 1")
        convert = {"string": "{}.decode()", "uuid": "_uuid({})", "bytes": "{}"}[kind]
        src(f"{x} = {convert.format('b[p : p + n]')}")
        src("p += n")

    def enum(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """The symbol by a table indexed by the (one-byte) encoded index."""
        src = self.src
        symbols = tuple(schema["symbols"])
        by_byte = tuple(
            symbols[c >> 1] if c < 0x80 and not c & 1 and c >> 1 < len(symbols) else None for c in range(256)
        )
        src(f"{x} = {src.constant('ENUM', by_byte)}[b[p]]")
        with src.block(f"if {x} is None:"):
            src(f"{x}, p = _read_enum(b, p, {src.constant('SYMBOLS', symbols)}, {_where(path)!r})")
        with src.block("else:"):
            src("p += 1")

    def record(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """Each field into a local, then the dict of them, in field order as fastavro has it."""
        src = self.src
        items = []
        with self.fields(schema, namespace) as fields:
            for name, field_type in fields:
                field = src.local("v")
                src(f"# {path}{name}: {_describe(field_type)}")
                self.value(field_type, field, f"{path}{name}.", namespace)
                items.append(f"{name!r}: {field}")
        src(f"{x} = {{{', '.join(items)}}}")

    def container(self, schema: Any, kind: str, x: str, path: str, namespace: str) -> None:
        """Blocks of items until the empty block."""
        src = self.src
        if kind == "array" and self.may_be_empty(schema["items"], namespace):
            # A count could not be checked against the bytes left: a few bytes could ask for 2**63 items.
            raise UnsupportedSchema(f"{path}: an array of items that may encode to no bytes")
        count, item = src.local("count"), src.local("i")
        src(f"{x} = {'[]' if kind == 'array' else '{}'}")
        src(f"{count}, p = _read_count(b, p)")
        with src.block(f"while {count}:"):
            with src.block(f"for _ in range({count}):"):
                if kind == "array":
                    self.value(schema["items"], item, f"{path}[].", namespace)
                    src(f"{x}.append({item})")
                else:
                    key = src.local("k")
                    self.value("string", key, f"{path}{{key}}.", namespace)
                    self.value(schema["values"], item, f"{path}{{}}.", namespace)
                    src(f"{x}[{key}] = {item}")
            src(f"{count}, p = _read_count(b, p)")

    def union(self, schema: list[Any], kind: str, x: str, path: str, namespace: str) -> None:
        """The branch index, one byte (the encoder compiles no union of more than 64 branches)."""
        src = self.src
        index = src.local("u")
        src(f"{index} = b[p]")
        src("p += 1")
        keyword = "if"
        for i, branch in enumerate(schema):
            with src.block(f"{keyword} {index} == {2 * i}:  # {_describe(branch)}"):
                self.value(branch, x, path, namespace)
            keyword = "elif"
        with src.block("else:"):
            src(f"raise _bad_union(b, p - 1, {_where(path)!r}, {len(schema)})")


def _where(path: str) -> str:
    """A field path for messages: ``meta.causation_id``, or ``(record)`` for the whole record."""
    return path.rstrip(".") or "(record)"


def _describe(schema: Any) -> str:
    """A short name of a schema, for the comments of the generated code."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " | ".join(_describe(branch) for branch in schema)
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _describe(kind)
    if kind in ("record", "enum", "fixed"):
        return f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")
    if kind == "array":
        return f"array<{_describe(schema['items'])}>"
    if kind == "map":
        return f"map<{_describe(schema['values'])}>"
    return str(schema.get("logicalType", kind))


def generate(expanded: Mapping[str, Any], full_name: str) -> tuple[str, dict[str, Any]]:
    """Source of ``encode_<Name>`` and ``decode_<Name>`` for an expanded record schema, and their globals."""
    if expanded.get("type") != "record":
        raise UnsupportedSchema(f"{full_name} is not a record")
    short = full_name.rpartition(".")[2]
    if not short.isidentifier():
        raise UnsupportedSchema(f"{full_name!r} does not make a Python name")
    namespace = dict(_GLOBALS)

    encoder = _Source(namespace)
    with encoder.block(f'def encode_{short}(v, prefix=b"", /):'):
        encoder(f'"""``prefix`` + the Avro binary encoding of a {full_name}."""')
        encoder("buf = bytearray(prefix)")
        _EncoderCompiler(encoder).value(dict(expanded), "v", "", "")
        encoder("return bytes(buf)")

    model_encoder = _Source(namespace)
    with model_encoder.block(f'def encode_model_{short}(v, prefix=b"", /):'):
        model_encoder(f'"""``prefix`` + the Avro binary encoding of a {full_name} model."""')
        model_encoder("buf = bytearray(prefix)")
        _ModelEncoderCompiler(model_encoder).value(dict(expanded), "v", "", "")
        model_encoder("return bytes(buf)")

    decoder = _Source(namespace)
    with decoder.block(f"def decode_{short}(b, p=0, /):"):
        decoder(f'"""The {full_name} encoded in ``b[p:]``."""')
        with decoder.block("if b.__class__ is not bytes:"):
            decoder("b = bytes(b)")
        with decoder.block("try:"):
            _DecoderCompiler(decoder).value(dict(expanded), "record", "", "")
        with decoder.block("except AvroDecodeError:"):
            decoder("raise")
        with decoder.block("except (IndexError, ValueError, OverflowError, _struct_error) as e:"):
            decoder(f"raise _malformed({full_name!r}, b, e) from e")
        with decoder.block("if p != len(b):"):
            decoder(f"raise _misaligned({full_name!r}, b, p)")
        decoder("return record")
    return "\n".join([*encoder.lines, "", "", *model_encoder.lines, "", "", *decoder.lines, ""]), namespace


def compile_codec(expanded: Mapping[str, Any], full_name: str) -> Codec:
    """Generate, compile and load the encoder and decoder of an expanded record schema."""
    source, namespace = generate(expanded, full_name)
    filename = f"<avro_compiled {full_name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)
    short = full_name.rpartition(".")[2]
    return Codec(
        full_name,
        namespace[f"encode_{short}"],
        namespace[f"decode_{short}"],
        source,
        namespace[f"encode_model_{short}"],
    )


_CACHE: dict[bytes, Codec | None] = {}


def codec_for(record: RecordSchema) -> Codec | None:
    """The compiled codec of ``record``, cached per fingerprint; ``None`` if its schema is not supported."""
    try:
        return _CACHE[record.fingerprint]
    except KeyError:
        pass
    codec: Codec | None
    try:
        codec = compile_codec(record.expanded, record.full_name)
    except UnsupportedSchema as e:
        log.warning("%s is not compiled (%s); fastavro encodes and decodes it", record.full_name, e)
        codec = None
    _CACHE[record.fingerprint] = codec
    return codec


__all__ = [
    "AvroDecodeError",
    "Codec",
    "Decoder",
    "Encoder",
    "ModelEncoder",
    "UnsupportedSchema",
    "codec_for",
    "compile_codec",
    "generate",
]
