"""Signed records: Ed25519 keys, and one signature per batch of records with a Merkle proof per record.

An Ed25519 signature costs tens of microseconds to make and about three times that to check
(see ``bench/README.md``): per record, more than the gate's whole decision. So a producer
signs a *batch*: the records it flushes together (at most :data:`MAX_BATCH`) are the leaves
of a Merkle tree in the manner of Certificate Transparency (RFC 9162, §2.1), the signature
covers the tree's root, and each record carries, in its :data:`SIGNATURE_HEADER`, the
signature and its own inclusion proof. Every record is checked on its own — a reader
needs no other record of the batch, whichever partitions they went to — and a reader checks
each batch's signature once (:class:`BatchVerifier` remembers the ones it checked).

What is signed, per record (the leaf)::

    leaf = SHA-256( 0x00 || "agentlog.record.v1"
                  || len(topic) || topic        deployed name (prefix included), int32 + UTF-8
                  || len(key)   || key          int32 + bytes (length -1: null key)
                  || len(value) || value )      int32 + bytes (length -1: null value)

and per batch ``Ed25519(private, "agentlog.batch.v1" || 0x00 || key_id || 0x00 || size || root)``
(``size`` as int32): the key id is bound into the signature, and with the proof's index and
size the position of the record in its batch. The value holds the event's identity fields
(tenant, producer, root, the acting agent); headers other than the signature are not covered.

The header value is text, so that every place that keeps headers as text (the audit log,
exports) keeps it intact: ``v1;<key id>;<index>/<size>;<signature>;<path>``, the signature
and the concatenated path hashes in unpadded base64url.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agentlog.errors import AgentlogError
from agentlog.records import Headers, header

SIGNATURE_HEADER = "agentlog-signature"
"""The header that carries a record's signature and inclusion proof."""
KEY_ID_PREFIX = "ed25519:"
MAX_BATCH = 128
"""Records one signature covers at most (a proof is then at most 7 hashes, 224 bytes)."""

_LEAF = b"\x00agentlog.record.v1"
_NODE = b"\x01"
_BATCH = b"agentlog.batch.v1\x00"
_INT = struct.Struct(">i")
_NULL = _INT.pack(-1)
_HASH_BYTES = 32


class SigningError(AgentlogError):
    """A key that cannot be loaded or used."""


class SignatureFormatError(ValueError):
    """A signature header that does not parse."""


def key_id_of(public_raw: bytes) -> str:
    """The id of a raw Ed25519 public key: ``ed25519:`` and 16 bytes of its SHA-256 in hex."""
    return KEY_ID_PREFIX + hashlib.sha256(public_raw).digest()[:16].hex()


class SigningKey:
    """A private Ed25519 key, and the id of its public half."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id_of(self.public_raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """The key in a PEM (PKCS#8, unencrypted) file; raises :class:`SigningError` naming the file."""
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as e:
            raise SigningError(f"cannot read signing key {path}: {e.strerror or e}") from e
        except (ValueError, TypeError) as e:
            raise SigningError(f"{path} holds no unencrypted PEM private key: {e}") from e
        if not isinstance(private, Ed25519PrivateKey):
            raise SigningError(f"{path} holds a {type(private).__name__}; agentlog signs with Ed25519 keys")
        return cls(private)

    def save(self, path: Path) -> None:
        """Write the private key as PEM, readable by its owner only; refuses to overwrite a file."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise SigningError(f"cannot create {path}: {e.strerror or e}") from e
        with os.fdopen(fd, "wb") as f:
            f.write(pem)

    def save_public(self, path: Path) -> None:
        """Write the public half as PEM (for ``agentlog keys add`` on another host)."""
        pem = self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path.write_bytes(pem)

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``."""
        return self._private.sign(message)


def load_public_key(path: Path) -> bytes:
    """The raw Ed25519 public key in a PEM file (a public key, or a private key's public half)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SigningError(f"cannot read {path}: {e.strerror or e}") from e
    if b"PRIVATE KEY" in data:
        return SigningKey.load(path).public_raw
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise SigningError(f"{path} holds no PEM public key: {e}") from e
    if not isinstance(public, Ed25519PublicKey):
        raise SigningError(f"{path} holds a {type(public).__name__}; agentlog signs with Ed25519 keys")
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def leaf_hash(topic: str, key: bytes | None, value: bytes | None) -> bytes:
    """The Merkle leaf of one record (see the module docstring)."""
    encoded = topic.encode()
    return hashlib.sha256(
        b"".join(
            (
                _LEAF,
                _INT.pack(len(encoded)),
                encoded,
                _NULL if key is None else _INT.pack(len(key)) + key,
                _NULL if value is None else _INT.pack(len(value)) + value,
            )
        )
    ).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _tree(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root of ``leaves`` and each leaf's inclusion path (RFC 9162 §2.1.3.1), nearest sibling first."""
    if len(leaves) == 1:
        return leaves[0], [[]]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below the size
    left, left_paths = _tree(leaves[:split])
    right, right_paths = _tree(leaves[split:])
    return _node(left, right), [[*p, right] for p in left_paths] + [[*p, left] for p in right_paths]


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` proves ``leaf`` at ``index`` of ``size`` belongs to; None when it cannot (RFC 9162
    §2.1.3.2)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def _signed_message(key_id: str, size: int, root: bytes) -> bytes:
    return _BATCH + key_id.encode() + b"\x00" + _INT.pack(size) + root


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_batch(key: SigningKey, records: Sequence[tuple[str, bytes | None, bytes | None]]) -> list[str]:
    """The signature header value of each ``(topic, key, value)`` of one batch (at most :data:`MAX_BATCH`)."""
    if not 0 < len(records) <= MAX_BATCH:
        raise SigningError(f"a signed batch holds 1 to {MAX_BATCH} records, not {len(records)}")
    root, paths = _tree([leaf_hash(*r) for r in records])
    size = len(records)
    signature = _b64(key.sign(_signed_message(key.key_id, size, root)))
    return [f"v1;{key.key_id};{i}/{size};{signature};{_b64(b''.join(path))}" for i, path in enumerate(paths)]


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed signature header."""

    key_id: str
    index: int
    size: int
    signature: bytes
    path: tuple[bytes, ...]

    @classmethod
    def parse(cls, value: str | bytes) -> Signature:
        """Parse a header value; raises :class:`SignatureFormatError` saying what is wrong."""
        try:
            text = value.decode() if isinstance(value, bytes) else value
            version, key_id, position, signature, path = text.split(";")
            index, size = (int(n) for n in position.split("/"))
            raw_signature, raw_path = _unb64(signature), _unb64(path)
        except (UnicodeDecodeError, ValueError) as e:
            raise SignatureFormatError(f"not v1;<key id>;<index>/<size>;<signature>;<path>: {e}") from e
        if version != "v1":
            raise SignatureFormatError(f"unknown signature version {version!r}")
        if len(raw_signature) != 64:
            raise SignatureFormatError(f"an Ed25519 signature is 64 bytes, not {len(raw_signature)}")
        if len(raw_path) % _HASH_BYTES:
            raise SignatureFormatError(f"the proof is {len(raw_path)} bytes, not a multiple of {_HASH_BYTES}")
        if not 0 <= index < size <= MAX_BATCH:
            raise SignatureFormatError(f"position {index}/{size} is not within a batch of at most {MAX_BATCH}")
        if len(raw_path) > _HASH_BYTES * (size - 1).bit_length():
            raise SignatureFormatError(f"the proof has more hashes than a batch of {size} needs")
        hashes = tuple(raw_path[i : i + _HASH_BYTES] for i in range(0, len(raw_path), _HASH_BYTES))
        return cls(key_id, index, size, raw_signature, hashes)


def signature_header(headers: Headers | None) -> str | bytes | None:
    """The value of the signature header among ``headers`` (None: the record is unsigned)."""
    return header(headers, SIGNATURE_HEADER)


class BatchVerifier:
    """Checks batch signatures, each distinct one once (the most recent :data:`REMEMBERED` are kept)."""

    REMEMBERED = 4096

    def __init__(self) -> None:
        self._verified: OrderedDict[tuple[bytes, bytes], bool] = OrderedDict()

    def verify(self, public: Ed25519PublicKey, signature: Signature, root: bytes) -> bool:
        """Whether ``signature`` by ``public`` covers a batch of ``signature.size`` with ``root``."""
        message = _signed_message(signature.key_id, signature.size, root)
        seen = (signature.signature, message)  # the message names the key id, which names the public key
        known = self._verified.get(seen)
        if known is not None:
            self._verified.move_to_end(seen)
            return known
        try:
            public.verify(signature.signature, message)
            valid = True
        except InvalidSignature:
            valid = False
        self._verified[seen] = valid
        if len(self._verified) > self.REMEMBERED:
            self._verified.popitem(last=False)
        return valid
