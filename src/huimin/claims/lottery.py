"""The lottery draw (摇号), pure and verifiable by anyone.

Before registration closes the platform publishes SHA-256(seed). After it closes the seed is revealed
and every entry gets a score = HMAC-SHA256(seed, round_id | batch_id | entry_id); entries are ranked by
score (entry id breaks the impossible tie) and the first `stock` win. Anyone holding the revealed seed
and the published entry list can recompute the ranking: the seed was fixed before the entries were
known, and the entries cannot be changed afterwards without changing the published entries digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from huimin.kit.sealing import Sealer

__all__ = ["entries_digest", "lottery_sealer", "new_seed", "rank_entries", "seed_commitment", "winners"]


def lottery_sealer(secret_key: str) -> Sealer:
    """Seeds are sealed until the draw, so that nobody with database access can foresee the winners."""
    return Sealer(secret_key, "lottery-seed")


def new_seed() -> str:
    return secrets.token_hex(32)


def seed_commitment(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def entries_digest(entry_ids: Sequence[str]) -> str:
    """The fingerprint of the entry list as published: SHA-256 of the sorted ids, one per line."""
    return hashlib.sha256("\n".join(sorted(entry_ids)).encode()).hexdigest()


def _score(seed: str, round_id: str, batch_id: str, entry_id: str) -> str:
    return hmac.new(seed.encode(), f"{round_id}|{batch_id}|{entry_id}".encode(), hashlib.sha256).hexdigest()


def rank_entries(seed: str, round_id: str, batch_id: str, entry_ids: Sequence[str]) -> list[str]:
    """All entries in draw order: the first is drawn first."""
    return sorted(entry_ids, key=lambda entry_id: (_score(seed, round_id, batch_id, entry_id), entry_id))


def winners(seed: str, round_id: str, batch_id: str, entry_ids: Sequence[str], stock: int) -> list[str]:
    return rank_entries(seed, round_id, batch_id, entry_ids)[: max(stock, 0)]
