"""The hash chain catches an edited, deleted, inserted or back-dated record, and names it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from huimin.audit.domain import GENESIS, Entry, Link, chain_hash, verify

START = datetime(2022, 6, 24, 2, 0, tzinfo=UTC)


def entries(count: int) -> dict[int, Entry]:
    return {
        number: Entry(
            id=number,
            at=START + timedelta(minutes=number),
            actor_id="usr_city",
            actor_name="市商务局 王芳",
            actor_role="city_admin",
            action="merchant.publish",
            object_type="merchant",
            object_id=f"mch_{number}",
            result="ok",
            client_ip="10.0.0.8",
            detail={"reason": "材料齐全"},
        )
        for number in range(1, count + 1)
    }


def chain(records: dict[int, Entry]) -> list[Link]:
    links, prev = [], GENESIS
    for seq, (record_id, entry) in enumerate(sorted(records.items()), start=1):
        digest = chain_hash(prev, entry)
        links.append(Link(seq, record_id, prev, digest, entry.at + timedelta(seconds=5)))
        prev = digest
    return links


NOW = START + timedelta(days=1)


def test_an_untouched_chain_verifies() -> None:
    records = entries(5)
    verdict = verify(chain(records), records, now=NOW)
    assert verdict.ok
    assert verdict.sealed == 5


def test_an_edited_record_is_named() -> None:
    records = entries(5)
    links = chain(records)
    records[3] = dataclasses.replace(records[3], result="refused")
    verdict = verify(links, records, now=NOW)
    assert (verdict.ok, verdict.first_bad_record) == (False, 3)
    assert "edited" in verdict.reason


def test_a_deleted_record_is_named() -> None:
    records = entries(5)
    links = chain(records)
    del records[2]
    verdict = verify(links, records, now=NOW)
    assert (verdict.ok, verdict.first_bad_record, verdict.reason) == (False, 2, "record 2 was deleted")


def test_a_record_deleted_with_its_seal_breaks_the_sequence() -> None:
    records = entries(5)
    links = [link for link in chain(records) if link.record_id != 4]
    del records[4]
    verdict = verify(links, records, now=NOW)
    assert not verdict.ok
    assert verdict.first_bad_seq == 4


def test_a_record_inserted_without_a_seal_is_named() -> None:
    records = entries(5)
    links = chain(records)
    records[99] = dataclasses.replace(records[1], id=99)
    verdict = verify(links, records, now=NOW)
    assert (verdict.ok, verdict.first_bad_record) == (False, 99)


def test_a_record_being_sealed_right_now_is_not_an_insertion() -> None:
    records = entries(5)
    links = chain(records)
    records[6] = dataclasses.replace(records[1], id=6, at=NOW - timedelta(seconds=3))
    assert verify(links, records, now=NOW).ok


def test_a_back_dated_record_sealed_later_is_named() -> None:
    records = entries(5)
    forged = dataclasses.replace(records[1], id=6, at=START)  # claims to be from the first minute
    records[6] = forged
    links = chain(records)
    links[-1] = dataclasses.replace(links[-1], sealed_at=NOW)
    verdict = verify(links, records, now=NOW)
    assert (verdict.ok, verdict.first_bad_record) == (False, 6)


def test_a_forged_seal_in_the_middle_breaks_the_next_link() -> None:
    records = entries(5)
    links = chain(records)
    links[2] = dataclasses.replace(links[2], hash="f" * 64)
    verdict = verify(links, records, now=NOW)
    assert not verdict.ok
    assert verdict.first_bad_record == 3
