from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huimin.kit.clock import ManualClock, SystemClock, local_date, local_datetime, to_local
from huimin.kit.hashing import KeyedHasher, mask, normalise_identifier
from huimin.kit.ids import CROCKFORD, _base32, is_id, new_id


def test_manual_clock_moves_only_when_told_and_never_backwards() -> None:
    clock = ManualClock(datetime(2022, 6, 24, 1, 59, 59, tzinfo=UTC))
    assert clock.now() == datetime(2022, 6, 24, 1, 59, 59, tzinfo=UTC)
    assert clock.advance(timedelta(seconds=1)) == datetime(2022, 6, 24, 2, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(datetime(2022, 6, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2022, 7, 1))  # noqa: DTZ001 (the refusal under test)


def test_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().tzinfo is UTC


def test_friday_10_00_in_ziyang_is_02_00_utc() -> None:
    instant = local_datetime(date(2022, 6, 24), time(10, 0))
    assert instant == datetime(2022, 6, 24, 2, 0, tzinfo=UTC)
    assert to_local(instant).hour == 10
    # 23:30 UTC is already the next business day in Asia/Shanghai
    assert local_date(datetime(2022, 6, 30, 23, 30, tzinfo=UTC)) == date(2022, 7, 1)


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    earlier = new_id("cmp", at=datetime(2022, 6, 1, tzinfo=UTC))
    later = new_id("cmp", at=datetime(2022, 6, 2, tzinfo=UTC))
    assert is_id(earlier, "cmp")
    assert not is_id(earlier, "bat")
    assert earlier < later
    assert len({new_id("vch") for _ in range(10_000)}) == 10_000
    with pytest.raises(ValueError, match="prefix"):
        new_id("Campaign")


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_an_id_body_is_the_value_in_26_crockford_digits(value: int) -> None:
    body = _base32(value, 26)
    assert len(body) == 26
    assert sum(CROCKFORD.index(char) << (5 * (25 - index)) for index, char in enumerate(body)) == value


def test_mask_keeps_first_three_and_last_four() -> None:
    assert mask("13812345678") == "138****5678"
    assert mask("51200219900101123X") == "512***********123X"
    assert mask("12345") == "*****"


def test_one_person_hashes_to_one_value_whatever_the_spelling() -> None:
    hasher = KeyedHasher(b"k" * 32)
    assert normalise_identifier("５１２００２-19900101 123x") == "51200219900101123X"
    assert hasher.digest("id_number", "51200219900101123x") == hasher.digest(
        "id_number", "51200219900101123X"
    )
    # purposes are separated: a phone and an ID number with the same digits do not collide
    assert hasher.digest("phone", "13812345678") != hasher.digest("id_number", "13812345678")
    # and the key matters: without it the hash cannot be recomputed
    assert KeyedHasher(b"x" * 32).digest("phone", "13812345678") != hasher.digest("phone", "13812345678")


def test_short_hash_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        KeyedHasher(b"short")
