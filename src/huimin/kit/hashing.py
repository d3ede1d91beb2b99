"""Keyed hashing and masking of personal identifiers (个人信息保护法; SPEC §11.6).

ID numbers and phone numbers are never stored in clear: the database keeps HMAC-SHA256 under a key
that lives outside the database (configuration), so a stolen dump cannot be reversed by hashing the
1.4 billion possible ID numbers. Identifiers are normalised first so that one natural person always
hashes to one value ("51200219900101123x" and "51200219900101123X" are the same person).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

__all__ = ["KeyedHasher", "mask", "normalise_identifier"]


def normalise_identifier(value: str) -> str:
    """Full-width to half-width, spaces and dashes removed, letters upper-cased."""
    folded = unicodedata.normalize("NFKC", value)
    return "".join(char for char in folded if not char.isspace() and char != "-").upper()


def mask(value: str) -> str:
    """First 3 and last 4 characters kept, the rest starred: "138****5678"; short values fully starred."""
    clean = normalise_identifier(value)
    if len(clean) <= 7:
        return "*" * len(clean)
    return clean[:3] + "*" * (len(clean) - 7) + clean[-4:]


class KeyedHasher:
    """HMAC-SHA256 of normalised identifiers, domain-separated by purpose ("id_number", "phone", ...)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the hashing key must be at least 16 bytes")
        self._key = key

    def digest(self, purpose: str, value: str) -> str:
        message = purpose.encode() + b"\x00" + normalise_identifier(value).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
