"""The signing scheme, with the worked example of docs/partner-api.md."""

from __future__ import annotations

import hashlib

import pytest

from huimin.auth.domain import (
    SignatureRejected,
    SignedRequest,
    canonical_string,
    check_freshness,
    sign,
    verify_signature,
)

EXAMPLE = SignedRequest(
    method="POST",
    path="/api/v1/rounds/rnd_01G7ZQ4V8K3M2N7P5R6S8T0VWX/claims",
    timestamp="1656036005",
    nonce="9f2c4e1a7b3d4c5e8f901a2b3c4d5e6f",
    body=b'{"resident_id":"res_01G7ZQ4V8K3M2N7P5R6S8T0ABC","batch_id":"bat_01G7ZQ4V8K3M2N7P5R6S8T0DEF",'
    b'"location":{"lng":104.6276,"lat":30.1288,"crs":"gcj02"}}',
)
EXAMPLE_SECRET = "s3cr3t-example-do-not-use"


def test_the_canonical_string_joins_the_parts_with_newlines() -> None:
    assert canonical_string(EXAMPLE) == "\n".join(
        [
            "POST",
            "/api/v1/rounds/rnd_01G7ZQ4V8K3M2N7P5R6S8T0VWX/claims",
            "1656036005",
            "9f2c4e1a7b3d4c5e8f901a2b3c4d5e6f",
            hashlib.sha256(EXAMPLE.body).hexdigest(),
        ]
    )


def test_the_worked_example_of_the_docs() -> None:
    # the figure printed in docs/partner-api.md; if this changes, the docs are wrong
    assert (
        hashlib.sha256(EXAMPLE.body).hexdigest()
        == "f823170f47456be117fa7b23a28a5435f9f48e50fe439beccac3105b98b47db7"
    )
    assert sign(EXAMPLE_SECRET, EXAMPLE) == "bf385c26585c1492151250034a2490a43c549272be6fa808c9296691f7057283"
    verify_signature(EXAMPLE_SECRET, EXAMPLE, sign(EXAMPLE_SECRET, EXAMPLE))


@pytest.mark.parametrize("signature", ["", "zz", "A" * 64, "0" * 64])
def test_wrong_signatures_are_rejected(signature: str) -> None:
    with pytest.raises(SignatureRejected) as caught:
        verify_signature(EXAMPLE_SECRET, EXAMPLE, signature)
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize(
    ("timestamp", "nonce", "code"),
    [
        ("1656036005", "short", "bad_nonce"),
        ("1656036005", "has spaces in it!!!!", "bad_nonce"),
        ("16560360.5", "9f2c4e1a7b3d4c5e8f901a2b3c4d5e6f", "bad_timestamp"),
        ("1656035704", "9f2c4e1a7b3d4c5e8f901a2b3c4d5e6f", "stale_timestamp"),
        ("1656036306", "9f2c4e1a7b3d4c5e8f901a2b3c4d5e6f", "stale_timestamp"),
    ],
)
def test_freshness(timestamp: str, nonce: str, code: str) -> None:
    with pytest.raises(SignatureRejected) as caught:
        check_freshness(timestamp, nonce, now_unix=1656036005)
    assert caught.value.code == code


def test_the_window_is_five_minutes_either_side() -> None:
    assert (
        check_freshness("1656035705", "9f2c4e1a7b3d4c5e8f901a2b3c4d5e6f", now_unix=1656036005) == 1656035705
    )
    assert (
        check_freshness("1656036305", "9f2c4e1a7b3d4c5e8f901a2b3c4d5e6f", now_unix=1656036005) == 1656036305
    )
