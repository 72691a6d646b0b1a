"""Batch signatures: every record of a batch verifies alone, and nothing else does."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agentlog.signing import (
    MAX_BATCH,
    BatchVerifier,
    Signature,
    SignatureFormatError,
    SigningError,
    SigningKey,
    _tree,
    key_id_of,
    leaf_hash,
    root_from_path,
    sign_batch,
)

KEY = SigningKey.generate()


def _records(n: int) -> list[tuple[str, bytes | None, bytes | None]]:
    return [(f"t{i % 3}", f"root-{i}".encode(), f"value {i}".encode()) for i in range(n)]


def _verifies(key: SigningKey, header: str, record: tuple[str, bytes | None, bytes | None]) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signature = Signature.parse(header)
    root = root_from_path(signature.index, signature.size, leaf_hash(*record), signature.path)
    public = Ed25519PublicKey.from_public_bytes(key.public_raw)
    return root is not None and BatchVerifier().verify(public, signature, root)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 64, 100, MAX_BATCH])
def test_every_record_of_a_batch_verifies_on_its_own(size: int) -> None:
    records = _records(size)
    headers = sign_batch(KEY, records)
    assert len({h.split(";")[3] for h in headers}) == 1  # one signature for the batch
    assert all(_verifies(KEY, h, r) for h, r in zip(headers, records, strict=True))


@pytest.mark.parametrize("size", [2, 5, 16])
def test_a_changed_record_or_a_proof_moved_to_another_record_does_not_verify(size: int) -> None:
    records = _records(size)
    headers = sign_batch(KEY, records)
    topic, key, value = records[1]
    assert not _verifies(KEY, headers[1], (topic, key, (value or b"") + b"!"))
    assert not _verifies(KEY, headers[1], (topic + "x", key, value))
    assert not _verifies(KEY, headers[1], (topic, None, value))
    assert not _verifies(KEY, headers[0], records[1])
    assert not _verifies(SigningKey.generate(), headers[1], records[1])


def test_a_proof_with_a_changed_position_does_not_verify() -> None:
    records = _records(6)
    header = sign_batch(KEY, records)[2]
    version, key_id, _, signature, path = header.split(";")
    for position in ("3/6", "2/7", "2/5"):
        assert not _verifies(KEY, ";".join((version, key_id, position, signature, path)), records[2])


def test_root_from_path_matches_the_tree_for_every_leaf() -> None:
    leaves = [leaf_hash("t", None, bytes([i])) for i in range(13)]
    root, paths = _tree(leaves)
    assert all(root_from_path(i, 13, leaves[i], p) == root for i, p in enumerate(paths))
    assert root_from_path(13, 13, leaves[0], paths[0]) is None
    assert root_from_path(0, 13, leaves[0], paths[0][:-1]) != root


@pytest.mark.parametrize(
    "header",
    [
        "",
        "v1;k;0/1;AAAA",
        "v2;k;0/1;" + "A" * 86 + ";",
        "v1;k;x/1;" + "A" * 86 + ";",
        "v1;k;0/1;AAAA;",
        "v1;k;1/1;" + "A" * 86 + ";",
        "v1;k;0/1;" + "A" * 86 + ";AAAA",
        "v1;k;0/999;" + "A" * 86 + ";",
        "v1;k;0/1;" + "!" * 86 + ";",
        "v1;k;0/2;" + "A" * 86 + ";" + "A" * 86,  # two hashes where a batch of 2 needs one
    ],
)
def test_a_malformed_header_says_what_is_wrong(header: str) -> None:
    with pytest.raises(SignatureFormatError):
        Signature.parse(header)


def test_batches_are_one_to_max_batch_records() -> None:
    with pytest.raises(SigningError):
        sign_batch(KEY, [])
    with pytest.raises(SigningError):
        sign_batch(KEY, _records(MAX_BATCH + 1))


def test_a_key_is_saved_for_its_owner_only_never_over_another_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "runtime.pem"
    KEY.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path).key_id == KEY.key_id == key_id_of(KEY.public_raw)
    with pytest.raises(SigningError, match="cannot create"):
        SigningKey.generate().save(path)
    assert SigningKey.load(path).key_id == KEY.key_id


def test_loading_something_that_is_not_an_ed25519_key_names_the_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(SigningError, match=r"garbage\.pem"):
        SigningKey.load(garbage)
    with pytest.raises(SigningError, match=r"missing\.pem"):
        SigningKey.load(tmp_path / "missing.pem")
    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(SigningError, match="Ed25519"):
        SigningKey.load(other)


def test_a_public_key_is_read_from_its_own_pem_or_from_the_private_key(tmp_path: Path) -> None:
    from agentlog.signing import load_public_key

    private, public = tmp_path / "rt.pem", tmp_path / "rt.pem.pub"
    KEY.save(private)
    KEY.save_public(public)
    assert load_public_key(public) == load_public_key(private) == KEY.public_raw
    (tmp_path / "junk.pub").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SigningError, match=r"junk\.pub"):
        load_public_key(tmp_path / "junk.pub")
    with pytest.raises(SigningError, match="cannot read"):
        load_public_key(tmp_path / "absent.pub")
