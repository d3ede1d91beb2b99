"""Express claims' Redis side on a three-node Redis Cluster: the one-call decide script, the answers under
Idempotency-Keys, the per-person counts, the stock and the claim streams, with campaigns whose keys live
on different nodes. No database: the consumer's PostgreSQL write is replaced by a list (the database side
is tested in test_express_claims.py)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.claims import express
from huimin.claims.express import ExpressGate, ExpressPersister, campaign_keys
from tests.integration.redis_servers import cluster_client, redis_cluster

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")
CAMPAIGNS = ("cmp_north", "cmp_east", "cmp_south")  # their hash tags fall in the three nodes' slot ranges
PAUSED = "cmp_west"
STOCK, PER_ROUND, PER_CAMPAIGN = 10, 2, 3
PEOPLE = [f"psn_{n}" for n in range(8)]
HELD = {"round": {"psn_0": PER_ROUND}, "campaign": {"psn_7": PER_CAMPAIGN}}  # before the round opens
# Per campaign, attempt by attempt over PEOPLE: psn_0 and psn_7 are at a limit already; psn_1..6 take 6,
# then psn_1..4 take the last 4; psn_5 and psn_6 find it sold out; psn_1..4 try a third time over the limit.
EXPECTED_OK = {"psn_1": 2, "psn_2": 2, "psn_3": 2, "psn_4": 2, "psn_5": 1, "psn_6": 1}
EXPECTED = Counter({"ok": STOCK, "limit_reached": 10, "sold_out": 4})


def scopes(campaign_id: str) -> dict[str, tuple[str, int, str]]:
    return {
        "campaign": (f"c:{campaign_id}", PER_CAMPAIGN, "per person in this campaign"),
        "round": (f"r:rnd_{campaign_id}:b:bat_{campaign_id}", PER_ROUND, "per person in this round"),
    }


def ask(campaign_id: str, person: str, key: str, digest: str = "d1") -> tuple[list[str], dict[str, Any]]:
    """A claim's keys and script arguments, built as `decide_claim` builds them."""
    names, round_id, batch_id = campaign_keys(campaign_id), f"rnd_{campaign_id}", f"bat_{campaign_id}"
    limits = sorted(scopes(campaign_id).values())
    voucher_id = f"vch_{campaign_id}_{key}"
    keys = [
        names.answer("ptn_app", key),
        names.stock(round_id, batch_id),
        *(names.held(scope) for scope, _, _ in limits),
    ]
    answer = {"voucher_id": voucher_id, "batch_name": "惠民消费券"}
    record = {"id": voucher_id, "person_id": person, "campaign_id": campaign_id, "scopes": []}
    claim = {
        "i": 0,
        "s": 1,
        "h": [[2 + n, limit, f"{limit} {what}"] for n, (_, limit, what) in enumerate(limits)],
        "p": person,
        "d": digest,
        "a": json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
        "r": json.dumps(record, ensure_ascii=False, separators=(",", ":")),
        "round": round_id,
        "batch": batch_id,
    }
    return keys, claim


def test_express_claims_decide_and_stream_on_a_three_node_redis_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redis_cluster(tmp_path, *DURABLE) as port:
        asyncio.run(_claim_on_the_cluster(port, monkeypatch))


async def _claim_on_the_cluster(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = await cluster_client(port)
    nodes = [cluster.get_node_from_key(campaign_keys(c).ready) for c in CAMPAIGNS]
    assert len({node.name for node in nodes if node is not None}) == len(CAMPAIGNS)  # one on each node
    gate = ExpressGate(cluster)
    assert await gate.durability() is None
    for campaign_id in CAMPAIGNS:
        held = {scopes(campaign_id)[name][0]: counts for name, counts in HELD.items()}
        await gate.provision(campaign_id, {(f"rnd_{campaign_id}", f"bat_{campaign_id}"): STOCK}, held)

    asks = [
        (c, person, f"k{attempt}{person}") for attempt in range(3) for person in PEOPLE for c in CAMPAIGNS
    ]
    verdicts = await asyncio.gather(*(gate.decide(c, *ask(c, person, key)) for c, person, key in asks))
    accepted: dict[str, set[str]] = {}
    for campaign_id in CAMPAIGNS:
        mine = [
            (person, key, v) for (c, person, key), v in zip(asks, verdicts, strict=True) if c == campaign_id
        ]
        assert Counter(v[0] for _, _, v in mine) == EXPECTED
        assert Counter(person for person, _, v in mine if v == ["ok"]) == EXPECTED_OK
        assert {v[1] for person, _, v in mine if v[0] == "limit_reached" and person == "psn_7"} == {
            "3 per person in this campaign"
        }
        names, (scope, _, _) = campaign_keys(campaign_id), scopes(campaign_id)["round"]
        counts = {_text(p): int(n) for p, n in (await cluster.hgetall(names.held(scope))).items()}
        assert counts == {**EXPECTED_OK, **HELD["round"]}  # nobody over the limit
        accepted[campaign_id] = {f"vch_{campaign_id}_{key}" for _, key, v in mine if v == ["ok"]}
        entries: Any = await cluster.xrange(names.stream)
        assert await cluster.xlen(names.stream) == STOCK
        assert {json.loads(fields[b"v"])["id"] for _, fields in entries} == accepted[campaign_id]
        left = await gate.stock_left_of([(campaign_id, f"rnd_{campaign_id}", f"bat_{campaign_id}")])
        assert list(left.values()) == [0]

        first_ok = next(key for person, key, v in mine if v == ["ok"])
        keys, claim = ask(campaign_id, "psn_1", first_ok)
        assert await gate.decide(campaign_id, keys, claim) == ["replay", "ok\t" + claim["a"]]
        assert await gate.decide(campaign_id, *ask(campaign_id, "psn_1", first_ok, "d2")) == ["mismatch"]
        assert await gate.decide(campaign_id, *ask(campaign_id, "psn_5", "k1psn_5")) == ["replay", "sold_out"]
        assert await gate.decide(campaign_id, *ask(campaign_id, "psn_0", "k0psn_0")) == [
            "replay",
            "limit_reached\t2 per person in this round",
        ]
        assert await cluster.xlen(names.stream) == STOCK  # a retry takes nothing and appends nothing

        await gate.set_round_stock(campaign_id, f"rnd_{campaign_id}", {f"bat_{campaign_id}": 1})
        assert await gate.decide(campaign_id, *ask(campaign_id, "psn_5", "restocked")) == ["ok"]
        accepted[campaign_id].add(f"vch_{campaign_id}_restocked")

    await gate.set_round_stock(PAUSED, f"rnd_{PAUSED}", {f"bat_{PAUSED}": 5})  # stock, but never `ready`
    await gate.pause(CAMPAIGNS[0])
    refused = await asyncio.gather(
        *(gate.decide(PAUSED, *ask(PAUSED, person, f"p{person}")) for person in PEOPLE),
        gate.decide(CAMPAIGNS[0], *ask(CAMPAIGNS[0], "psn_6", "after-pause")),
    )
    assert refused == [["paused"]] * (len(PEOPLE) + 1)
    assert await gate.stock_left_of([(PAUSED, f"rnd_{PAUSED}", f"bat_{PAUSED}")]) == {
        (f"rnd_{PAUSED}", f"bat_{PAUSED}"): 5
    }
    assert await cluster.xlen(campaign_keys(PAUSED).stream) == 0
    assert await gate.campaigns() == sorted(CAMPAIGNS)

    persisted: list[dict[str, Any]] = []

    async def persist(_session: AsyncSession, records: list[dict[str, Any]]) -> list[int]:
        persisted.extend(records)
        return []

    monkeypatch.setattr(express, "persist_entries", persist)
    persister = ExpressPersister(cluster, async_sessionmaker(), consumer="test")  # no bind: never queried
    assert await persister.pending() == len(CAMPAIGNS) * (STOCK + 1)
    report = await persister.drain_once()
    assert report.read == len(CAMPAIGNS) * (STOCK + 1)
    assert sorted(report.streams) == sorted(campaign_keys(c).stream for c in CAMPAIGNS)
    assert Counter(r["id"] for r in persisted) == Counter(set().union(*accepted.values()))
    assert await persister.pending() == 0  # acknowledged and deleted
    assert (await persister.drain_once(take_over_idle_ms=0)).read == 0
    await cluster.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
