"""Encryption of secrets that must be read back (partner HMAC secrets, bank accounts).

AES-256-GCM under a key derived from HUIMIN_SECRET_KEY and a purpose, so the key lives outside the
database and one purpose's ciphertext cannot be opened as another's.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Sealer"]

_VERSION = b"\x01"


class Sealer:
    def __init__(self, secret_key: str, purpose: str) -> None:
        self._purpose = purpose.encode()
        self._aead = AESGCM(
            hashlib.sha256(b"huimin-seal\x00" + self._purpose + b"\x00" + secret_key.encode()).digest()
        )

    def seal(self, plaintext: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), self._purpose)

    def open(self, sealed: bytes) -> str:
        if sealed[:1] != _VERSION:
            raise ValueError("unknown sealed-value version")
        return self._aead.decrypt(sealed[1:13], sealed[13:], self._purpose).decode()
