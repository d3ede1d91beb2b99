"""The audit trail (审计日志) as pure values: what a record holds, how records are chained, and how a
chain is verified.

Records are written in the transaction of the action they describe (so an action and its record
commit together), and sealed afterwards in a hash chain: seal n holds
`hash_n = SHA-256(hash_{n-1} || "\\n" || canonical(record))`, starting from `GENESIS`. A record's
canonical form is JSON with sorted keys of every field that matters, its id included, so that

- an edited record no longer matches its seal's hash;
- a deleted record leaves a seal without its record (or, with its seal deleted too, a gap in the
  sequence and a seal whose `prev_hash` is not its predecessor's hash);
- an inserted record is a record without a seal (or a forged seal that breaks the next link); a
  back-dated record slipped in and then sealed carries a seal much later than its own time.

Sealing lags the action by at most the sealer's period (seconds), so `GRACE` separates the two: a
record unsealed for longer, or sealed longer after its time, was not written by the application.

`verify` walks the chain in order and names the first bad record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["GENESIS", "GRACE", "Entry", "Link", "Verdict", "chain_hash", "verify"]

GENESIS = "0" * 64
GRACE = timedelta(hours=1)  # far above any sealing lag or transaction length


@dataclass(frozen=True)
class Entry:
    """One audited action: who (actor, role), when, what (action on an object), with what result."""

    id: int
    at: datetime
    actor_id: str
    actor_name: str
    actor_role: str
    action: str
    object_type: str
    object_id: str
    result: str
    client_ip: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def canonical(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "at": self.at.isoformat(),
                "actor_id": self.actor_id,
                "actor_name": self.actor_name,
                "actor_role": self.actor_role,
                "action": self.action,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "result": self.result,
                "client_ip": self.client_ip,
                "detail": dict(self.detail),
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()


def chain_hash(prev_hash: str, entry: Entry) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + entry.canonical()).hexdigest()


@dataclass(frozen=True)
class Link:
    """A seal as stored: its place in the chain, the record it seals, the hashes."""

    seq: int
    record_id: int
    prev_hash: str
    hash: str
    sealed_at: datetime


@dataclass(frozen=True)
class Verdict:
    ok: bool
    sealed: int  # links checked
    first_bad_record: int | None = None  # the id of the first record that fails, when known
    first_bad_seq: int | None = None
    reason: str = ""


def verify(links: Iterable[Link], records: Mapping[int, Entry], *, now: datetime) -> Verdict:
    """Check every link in sequence order against the records, then that every record older than
    `GRACE` is in the chain. `records` maps record id to the record as stored."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    sealed: set[int] = set()
    for link in links:
        if link.seq != expected_seq:
            return Verdict(
                False,
                checked,
                None,
                expected_seq,
                f"seal {expected_seq} is missing (the chain jumps to {link.seq})",
            )
        if link.prev_hash != expected_prev:
            return Verdict(
                False,
                checked,
                link.record_id,
                link.seq,
                f"seal {link.seq} does not follow seal {link.seq - 1}: a seal was removed or forged",
            )
        entry = records.get(link.record_id)
        if entry is None:
            return Verdict(False, checked, link.record_id, link.seq, f"record {link.record_id} was deleted")
        if chain_hash(link.prev_hash, entry) != link.hash:
            return Verdict(False, checked, link.record_id, link.seq, f"record {link.record_id} was edited")
        if link.sealed_at - entry.at > GRACE:
            return Verdict(
                False,
                checked,
                link.record_id,
                link.seq,
                f"record {link.record_id} dated {entry.at.isoformat()} was sealed only at "
                f"{link.sealed_at.isoformat()}: inserted afterwards",
            )
        sealed.add(link.record_id)
        expected_prev, expected_seq, checked = link.hash, expected_seq + 1, checked + 1
    strays = sorted(
        record_id
        for record_id, entry in records.items()
        if record_id not in sealed and now - entry.at > GRACE
    )
    if strays:
        return Verdict(
            False,
            checked,
            strays[0],
            None,
            f"record {strays[0]} is not in the chain: inserted behind its back",
        )
    return Verdict(True, checked)
