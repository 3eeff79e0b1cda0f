"""Streaming encryption of backups: AES-256-GCM in 1 MiB chunks, the key derived with scrypt
from a passphrase (``POSTURE_BACKUP_KEY``), so a dump of any size never sits in memory.

File layout::

    MAGIC (8 bytes) | salt (16) | nonce prefix (8) | chunk | chunk | ...
    chunk = ciphertext length (4 bytes, big-endian) | ciphertext with its 16-byte tag

Chunk i is sealed with nonce = prefix || i and associated data = header || i || last, so
chunks cannot be swapped, dropped, or the file cut at a chunk boundary without the
decryption failing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from features.errors import PostureError

MAGIC = b"PSTRBK1\n"
CHUNK_BYTES = 1 << 20
SALT_BYTES, PREFIX_BYTES, LENGTH_BYTES = 16, 8, 4
HEADER_BYTES = len(MAGIC) + SALT_BYTES + PREFIX_BYTES
SCRYPT_N = 2**15  # ~0.1 s and 32 MiB once per file: slows guessing a weak passphrase


class BackupCryptoError(PostureError):
    """An encrypted backup that cannot be read with the key given."""


def derive_key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(passphrase.encode())


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


class EncryptingWriter:
    """``write`` plaintext, ``close`` seals the last chunk (always one, maybe empty)."""

    def __init__(self, sink: BinaryIO, passphrase: str) -> None:
        salt, self._prefix = os.urandom(SALT_BYTES), os.urandom(PREFIX_BYTES)
        self._header = MAGIC + salt + self._prefix
        self._aead = AESGCM(derive_key(passphrase, salt))
        self._sink, self._pending, self._index = sink, bytearray(), 0
        sink.write(self._header)

    def write(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) > CHUNK_BYTES:  # strictly more: the last chunk waits for close()
            self._seal(bytes(self._pending[:CHUNK_BYTES]), last=False)
            del self._pending[:CHUNK_BYTES]

    def close(self) -> None:
        self._seal(bytes(self._pending), last=True)
        self._pending.clear()

    def _seal(self, plain: bytes, last: bool) -> None:
        nonce = self._prefix + self._index.to_bytes(4, "big")
        sealed = self._aead.encrypt(nonce, plain, _aad(self._header, self._index, last))
        self._sink.write(len(sealed).to_bytes(LENGTH_BYTES, "big") + sealed)
        self._index += 1


def is_encrypted(path: os.PathLike[str] | str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def decrypt_chunks(source: BinaryIO, passphrase: str) -> Iterator[bytes]:
    """The plaintext, chunk by chunk; ``BackupCryptoError`` on a wrong key or a damaged file."""
    header = source.read(HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise BackupCryptoError("This file is not an encrypted posture backup.", "pass the .dump.enc file.")
    salt, prefix = header[len(MAGIC) : len(MAGIC) + SALT_BYTES], header[-PREFIX_BYTES:]
    aead = AESGCM(derive_key(passphrase, salt))
    current, index = _read_sealed(source), 0
    while current is not None:
        following = _read_sealed(source)
        nonce = prefix + index.to_bytes(4, "big")
        try:
            yield aead.decrypt(nonce, current, _aad(header, index, following is None))
        except InvalidTag:
            raise BackupCryptoError(
                f"Chunk {index} of the backup does not decrypt: a wrong key, or the file is damaged or cut short.",
                "set POSTURE_BACKUP_KEY to the key the backup was made with, or use another backup.",
            ) from None
        current, index = following, index + 1
    if index == 0:
        raise BackupCryptoError("The encrypted backup holds no data (cut short?).", "use another backup.")


def _read_sealed(source: BinaryIO) -> bytes | None:
    length = source.read(LENGTH_BYTES)
    if not length:
        return None
    size = int.from_bytes(length, "big")
    sealed = source.read(size)
    if len(length) != LENGTH_BYTES or len(sealed) != size:
        raise BackupCryptoError("The encrypted backup is cut short.", "use another backup.")
    return sealed
