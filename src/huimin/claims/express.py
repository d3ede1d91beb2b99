"""Express claims (`HUIMIN_CLAIMS_ACK=redis`): a claim decided and acknowledged in Redis, persisted to
PostgreSQL moments later by a consumer. The issue's own design for the flash release.

Per worker and event-loop pass, the claims of one campaign go to Redis as one Lua script call. For each
claim the script, atomically:

- answers a retry from the stored answer of its `Idempotency-Key` (or refuses another body under it);
- refuses `limit_reached` when the person holds the most vouchers any limit of the batch allows (per
  round, per batch, per campaign, per category: every limit, not only the round's);
- refuses `sold_out` when the round's batch has no stock (and announces it, like the claim gate);
- otherwise takes one from stock, counts the voucher against each limit, stores the answer under the
  key and appends the voucher to the campaign's stream, and the worker answers 201.

A consumer in every worker (`ExpressPersister`) reads the stream in batches and writes each batch of
vouchers to PostgreSQL in one transaction, with everything the synchronous claim writes: the voucher, its
`claimed` event, the per-person counters, the stock shards and the ledger posting. It is idempotent (a
voucher already in the database is skipped), so an entry delivered twice writes once; it acknowledges
the stream entries only after its commit.

**Redis must keep what it acknowledged**: AOF with `appendfsync always` (or a synchronous replica).
After the answer, the voucher exists only in Redis until the consumer has persisted it, usually within
a fraction of a second. `ExpressGate.durability` reports whether the connected Redis is configured so;
`huimin serve` refuses to start express claims on a Redis that is not, unless told otherwise
(docs/claims.md).

Everything a claim reads from the database (round, batch, campaign, the resident and whether a risk
sanction blocks them or they are a trade-union member) is kept in the worker for a few seconds
(`ExpressContexts`): a resident's facts are read for all the claims of one event-loop pass in one query.
A block therefore takes effect within `FACTS_TTL`, and a new round or a changed round within `OFFER_TTL`.

All keys of a campaign carry the hash tag `{c:<campaign id>}`, so the script runs unchanged on Redis
Cluster. A campaign's `ready` key missing (Redis lost its data) pauses its claims (`claims_paused`, 503)
until `huimin claims reconcile` has persisted the stream and rebuilt the counters from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time as systime
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.campaigns.domain import BatchKind, ClaimMode, ValidityKind
from huimin.campaigns.models import BatchRow, CampaignRow, RoundRow, StockShardRow
from huimin.claims.domain import (
    ClaimRefused,
    VoucherStatus,
    batch_scope,
    campaign_scope,
    category_scope,
    format_code,
    new_voucher_code,
    qr_payload,
    round_scope,
    valid_until,
)
from huimin.claims.gate import claims_paused, is_connection_error
from huimin.claims.models import ClaimCounterRow, VoucherEventRow, VoucherRow
from huimin.claims.repository import ClaimsRepository
from huimin.claims.service import claim_limits, unknown_round_or_batch
from huimin.db import unit_of_work
from huimin.eligibility import blocks
from huimin.eligibility import service as eligibility
from huimin.eligibility.geofence import Geofence, Location
from huimin.eligibility.models import ResidentRow, UnionMemberRow
from huimin.errors import HuiminError
from huimin.idempotency.service import mismatch
from huimin.kit.clock import Clock, local_datetime
from huimin.kit.ids import new_id
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger
from huimin.observability.metrics import set_stream_lag
from huimin.protection.soldout import CHANNEL as STOCK_EVENTS
from huimin.protection.soldout import stock_event
from huimin.risk import stream as risk_stream
from huimin.risk.service import Source

__all__ = [
    "FACTS_TTL",
    "OFFER_TTL",
    "ExpressClaim",
    "ExpressContexts",
    "ExpressGate",
    "ExpressPersister",
    "campaign_keys",
    "decide_claim",
    "paused_for_the_database",
    "persist_entries",
    "reconcile_express",
]

log = logging.getLogger("huimin.claims.express")

OFFER_TTL = 2.0  # seconds a worker keeps a round's batch and its campaign
FACTS_TTL = 5.0  # seconds a worker keeps a resident's facts (verified, blocked, union member)
ANSWER_TTL = timedelta(days=7)  # how long a claim's answer stays under its Idempotency-Key
_GROUP = "persist"
_STREAMS = "huimin:x:streams"  # the set of campaign streams the consumers read

# KEYS[1] = the campaign's ready flag, KEYS[2] = its stream, then the keys the claims name by index.
# ARGV[1] = answer TTL in seconds, ARGV[2] = the campaign id, then one JSON object per claim:
# {"i": idempotency key index, "s": stock key index, "h": [[count hash index, limit, what], ...],
#  "p": person id, "d": request digest, "a": the 201 answer, "r": the stream record, "round", "batch"}.
# Returns one verdict per claim: {"ok"}, {"replay", stored}, {"mismatch"}, {"sold_out"},
# {"limit_reached", what} or {"paused"}. A stored answer is "<digest>\n<verdict>[\t<answer or what>]".
_DECIDE = """
local n = #ARGV - 2
local verdicts = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 1, n do verdicts[i] = {'paused'} end
  return verdicts
end
local ttl = tonumber(ARGV[1])
local announced = {}
for i = 1, n do
  local c = cjson.decode(ARGV[i + 2])
  local answer_key = KEYS[c.i]
  local seen = redis.call('GET', answer_key)
  if seen then
    local cut = string.find(seen, '\\n', 1, true)
    if string.sub(seen, 1, cut - 1) == c.d then
      verdicts[i] = {'replay', string.sub(seen, cut + 1)}
    else
      verdicts[i] = {'mismatch'}
    end
  else
    local refusal = nil
    for _, h in ipairs(c.h) do
      local held = tonumber(redis.call('HGET', KEYS[h[1]], c.p) or '0')
      if held >= h[2] then
        refusal = {'limit_reached', h[3]}
        break
      end
    end
    if refusal == nil and tonumber(redis.call('GET', KEYS[c.s]) or '0') <= 0 then
      refusal = {'sold_out'}
      if not announced[c.s] then
        announced[c.s] = true
        redis.call('PUBLISH', '$CHANNEL', 'sold_out ' .. c.round .. ' ' .. c.batch)
      end
    end
    if refusal then
      local stored = refusal[1]
      if refusal[2] then stored = stored .. '\\t' .. refusal[2] end
      redis.call('SET', answer_key, c.d .. '\\n' .. stored, 'EX', ttl)
      verdicts[i] = refusal
    else
      redis.call('DECR', KEYS[c.s])
      for _, h in ipairs(c.h) do redis.call('HINCRBY', KEYS[h[1]], c.p, 1) end
      redis.call('SET', answer_key, c.d .. '\\nok\\t' .. c.a, 'EX', ttl)
      redis.call('XADD', KEYS[2], '*', 'v', c.r)
      verdicts[i] = {'ok'}
    end
  end
end
return verdicts
""".replace("$CHANNEL", STOCK_EVENTS)


@dataclass(frozen=True)
class CampaignKeys:
    tag: str

    @property
    def ready(self) -> str:
        return f"huimin:x:{self.tag}:ready"

    @property
    def stream(self) -> str:
        return f"huimin:x:{self.tag}:claims"

    def stock(self, round_id: str, batch_id: str) -> str:
        return f"huimin:x:{self.tag}:stock:{round_id}:{batch_id}"

    def held(self, scope: str) -> str:
        """The per-person counts of one limit's scope (the scopes of `claims.service._limits`)."""
        return f"huimin:x:{self.tag}:held:{scope}"

    def answer(self, partner_id: str, key: str) -> str:
        return f"huimin:x:{self.tag}:answer:{partner_id}:{key}"


def campaign_keys(campaign_id: str) -> CampaignKeys:
    return CampaignKeys("{c:" + campaign_id + "}")


# ---------------------------------------------------------------------------------------------------------
# What a claim reads, kept in the worker


@dataclass(frozen=True)
class Offer:
    """A batch released in a round, with what a claim of it needs, read from the database."""

    round_id: str
    campaign_id: str
    mode: str
    opens_at: datetime
    closes_at: datetime
    batch_id: str
    members_only: bool
    value_fen: int
    limits: tuple[tuple[str, int, str], ...]  # (counter scope, limit, description), sorted
    validity: tuple[ValidityKind, int | None, Any, datetime]  # kind, days, until, the campaign's close
    answer_fields: dict[str, Any]  # the batch's part of the 201 answer


@dataclass(frozen=True)
class ResidentFacts:
    resident_id: str
    person_id: str
    verified: bool
    blocked: bool
    union_member: bool


def _offer(round_: RoundRow, batch: BatchRow, campaign: CampaignRow) -> Offer:
    return Offer(
        round_id=round_.id,
        campaign_id=campaign.id,
        mode=round_.mode,
        opens_at=round_.opens_at,
        closes_at=round_.closes_at,
        batch_id=batch.id,
        members_only=batch.members_only,
        value_fen=batch.max_value_fen,
        limits=tuple(claim_limits(round_, batch, campaign)),  # the one definition of a batch's limits
        validity=(
            ValidityKind(batch.validity_kind),
            batch.validity_days,
            batch.validity_until,
            local_datetime(campaign.ends_on + timedelta(days=1), time(0)),
        ),
        answer_fields={
            "batch_id": batch.id,
            "batch_code": batch.code,
            "batch_name": batch.name,
            "kind": BatchKind(batch.kind).value,
            "face_value_fen": batch.face_value_fen,
            "threshold_fen": batch.threshold_fen,
            "max_value_fen": batch.max_value_fen,
        },
    )


_FACTS = (
    select(
        ResidentRow.id,
        ResidentRow.person_id,
        ResidentRow.real_name_verified,
        blocks.blocked(bindparam("campaign_id"), ResidentRow.person_id, ResidentRow.device_digest),
        select(UnionMemberRow.id_number_digest)
        .where(UnionMemberRow.id_number_digest == ResidentRow.id_number_digest)
        .exists(),
    )
    .where(ResidentRow.partner_id == bindparam("partner_id"))
    .where(ResidentRow.id.in_(bindparam("resident_ids", expanding=True)))
)


class ExpressContexts:
    """Offers and residents' facts, kept for `OFFER_TTL` / `FACTS_TTL` seconds. The residents missing
    from the cache in one event-loop pass are read in one query per (app, campaign)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        offer_ttl: float = OFFER_TTL,
        facts_ttl: float = FACTS_TTL,
        monotonic: Any = systime.monotonic,
    ) -> None:
        self._sessions = sessions
        self._offer_ttl = offer_ttl
        self._facts_ttl = facts_ttl
        self._monotonic = monotonic
        self._offers: dict[tuple[str, str], tuple[float, Offer]] = {}
        self._facts: dict[tuple[str, str, str], tuple[float, ResidentFacts]] = {}
        self._wanted: dict[tuple[str, str], dict[str, asyncio.Future[ResidentFacts | None]]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[Offer]] = {}

    async def offer(self, round_id: str, batch_id: str) -> Offer:
        """The batch as released in the round; `unknown_round` / `unknown_batch` when it is not."""
        cached = self._offers.get((round_id, batch_id))
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        loading = self._loading.get((round_id, batch_id))
        if loading is None:
            loading = asyncio.ensure_future(self._load_offer(round_id, batch_id))
            self._loading[(round_id, batch_id)] = loading
            loading.add_done_callback(lambda _: self._loading.pop((round_id, batch_id), None))
        return await asyncio.shield(loading)

    async def _load_offer(self, round_id: str, batch_id: str) -> Offer:
        async with unit_of_work(self._sessions) as session:
            found = await ClaimsRepository(session).round_batch(round_id, batch_id)
            if found is None:
                raise await unknown_round_or_batch(session, round_id, batch_id)
        offer = _offer(*found)
        self._offers[(round_id, batch_id)] = (self._monotonic() + self._offer_ttl, offer)
        return offer

    def campaign_of(self, round_id: str) -> str | None:
        """The campaign of a round this worker has seen (for the sold-out flags' stock reads)."""
        for (cached_round, _), (_, offer) in self._offers.items():
            if cached_round == round_id:
                return offer.campaign_id
        return None

    async def facts(self, partner_id: str, campaign_id: str, resident_id: str) -> ResidentFacts | None:
        """The calling app's resident (None: unknown to this app) as this campaign sees them."""
        cached = self._facts.get((partner_id, campaign_id, resident_id))
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        loop = asyncio.get_running_loop()
        wanted = self._wanted.get((partner_id, campaign_id))
        if wanted is None:
            wanted = self._wanted[(partner_id, campaign_id)] = {}
            loop.call_soon(lambda: asyncio.ensure_future(self._load_facts(partner_id, campaign_id)))
        future = wanted.get(resident_id)
        if future is None:
            future = wanted[resident_id] = loop.create_future()
        return await asyncio.shield(future)

    async def _load_facts(self, partner_id: str, campaign_id: str) -> None:
        wanted = self._wanted.pop((partner_id, campaign_id))
        try:
            async with unit_of_work(self._sessions) as session:
                rows = (
                    await session.execute(
                        _FACTS,
                        {"partner_id": partner_id, "campaign_id": campaign_id, "resident_ids": list(wanted)},
                    )
                ).all()
        except Exception as error:
            for future in wanted.values():
                if not future.done():
                    future.set_exception(error)
            return
        expires = self._monotonic() + self._facts_ttl
        found = {}
        for resident_id, person_id, verified, blocked, member in rows:
            facts = ResidentFacts(resident_id, person_id, bool(verified), bool(blocked), bool(member))
            found[resident_id] = facts
            if facts.verified:  # an unverified resident is read again: verification may come any moment
                self._facts[(partner_id, campaign_id, resident_id)] = (expires, facts)
        for resident_id, future in wanted.items():
            if not future.done():
                future.set_result(found.get(resident_id))
        if len(self._facts) > 500_000:  # a bound on the worker's memory: drop the expired
            now = self._monotonic()
            self._facts = {key: value for key, value in self._facts.items() if value[0] > now}


# ---------------------------------------------------------------------------------------------------------
# The gate


@dataclass
class _Ask:
    keys: list[str]
    claim: dict[str, Any]
    future: asyncio.Future[list[str]]


class ExpressGate:
    """Batches the claims of one campaign that arrive in one event-loop pass into one script call."""

    def __init__(self, redis: Redis | RedisCluster, *, answer_ttl: timedelta = ANSWER_TTL) -> None:
        self.redis = redis
        self._decide = redis.register_script(_DECIDE)
        self._answer_ttl = int(answer_ttl.total_seconds())
        self._pending: dict[str, list[_Ask]] = {}
        self.refusing: str | None = None  # why claims are refused (set by `Express` after a failed check)

    async def decide(self, campaign_id: str, keys: list[str], claim: dict[str, Any]) -> list[str]:
        """`keys`: the claim's answer key, stock key and count hashes; `claim` names them by their index
        in `keys` (0-based) and is rewritten to the script's numbering."""
        if self.refusing is not None:  # Redis turned out not to keep what it acknowledges
            raise claims_paused()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str]] = loop.create_future()
        pending = self._pending.get(campaign_id)
        if pending is None:
            pending = self._pending[campaign_id] = []
            loop.call_soon(lambda: asyncio.ensure_future(self._flush(campaign_id)))
        pending.append(_Ask(keys, claim, future))
        return await future

    async def _flush(self, campaign_id: str) -> None:
        asks = self._pending.pop(campaign_id)
        names = campaign_keys(campaign_id)
        keys = [names.ready, names.stream]
        index: dict[str, int] = {}

        def number(key: str) -> int:  # Lua's 1-based index of a key in KEYS
            if key not in index:
                keys.append(key)
                index[key] = len(keys)
            return index[key]

        args: list[Any] = [self._answer_ttl, campaign_id]
        for ask in asks:
            claim = dict(ask.claim)
            claim["i"] = number(ask.keys[claim["i"]])
            claim["s"] = number(ask.keys[claim["s"]])
            claim["h"] = [[number(ask.keys[k]), limit, what] for k, limit, what in claim["h"]]
            args.append(json.dumps(claim, ensure_ascii=False, separators=(",", ":")))
        try:
            verdicts = await self._decide(keys=keys, args=args)
        except Exception as error:
            refusal = claims_paused() if is_connection_error(error) else error
            if refusal is error:
                log.error("express claim script failed: %r", error)
            for ask in asks:
                if not ask.future.done():
                    ask.future.set_exception(refusal)
            return
        for ask, verdict in zip(asks, verdicts, strict=True):
            if not ask.future.done():
                ask.future.set_result([_text(part) for part in verdict])

    async def durability(self) -> str | None:
        """None when Redis keeps every acknowledged write (AOF, `appendfsync always`) — on a cluster,
        every primary — else what is missing; RedisError when Redis does not answer. (A Redis that
        forbids CONFIG, as managed ones may, is asked through INFO only.)"""
        cluster = isinstance(self.redis, RedisCluster)
        targets: dict[str, Any] = {"target_nodes": RedisCluster.PRIMARIES} if cluster else {}
        infos = _per_node(await self.redis.info("persistence", **targets), cluster)  # RedisError: no answer
        for node, info in infos.items():
            if not int(info.get("aof_enabled", 0)):
                return (
                    f"AOF is off{node} (appendonly no): acknowledged claims would be lost with Redis's memory"
                )
        try:
            configs = _per_node(await self.redis.config_get("appendfsync", **targets), cluster)
        except RedisError:
            return None
        for node, config in configs.items():
            value = _text(config.get("appendfsync") or config.get(b"appendfsync") or "")
            if value != "always":
                return (
                    f"appendfsync is {value!r}{node}, not 'always': the last second of claims could be lost"
                )
        return None

    async def provision(
        self,
        campaign_id: str,
        stock: dict[tuple[str, str], int],
        held: dict[str, dict[str, int]],
    ) -> None:
        """Write a campaign's stock and counts as PostgreSQL knows them, then open it (set `ready`).
        The caller has paused the campaign and persisted its stream first (`reconcile_express`)."""
        names = campaign_keys(campaign_id)
        for (round_id, batch_id), left in stock.items():
            await self.redis.set(names.stock(round_id, batch_id), left)
            if left > 0:
                await self.redis.publish(STOCK_EVENTS, stock_event("restocked", round_id, batch_id))
        for scope, counts in held.items():
            await self.redis.delete(names.held(scope))
            if counts:
                await self.redis.hset(names.held(scope), mapping=dict(counts.items()))
        await self._ensure_group(names.stream)
        await self.redis.sadd(_STREAMS, campaign_id)
        await self.redis.set(names.ready, "1")

    async def set_round_stock(self, campaign_id: str, round_id: str, stock: dict[str, int]) -> None:
        """A round's stock as the database now has it, before the round opens (an accepted allocation)."""
        names = campaign_keys(campaign_id)
        for batch_id, left in stock.items():
            await self.redis.set(names.stock(round_id, batch_id), left)
            if left > 0:
                await self.redis.publish(STOCK_EVENTS, stock_event("restocked", round_id, batch_id))

    async def pause(self, campaign_id: str) -> None:
        await self.redis.delete(campaign_keys(campaign_id).ready)

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, _GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def stock_left_of(
        self, pairs: Collection[tuple[str, str, str]]
    ) -> dict[tuple[str, str], int | None]:
        """The stock counter of each (campaign, round, batch); None where there is none."""
        left: dict[tuple[str, str], int | None] = {}
        for campaign_id, round_id, batch_id in pairs:
            value = await self.redis.get(campaign_keys(campaign_id).stock(round_id, batch_id))
            left[(round_id, batch_id)] = None if value is None else int(value)
        return left

    async def campaigns(self) -> list[str]:
        return sorted(_text(member) for member in await self.redis.smembers(_STREAMS))


def _per_node(answer: Any, cluster: bool) -> dict[str, Any]:
    """A command's answer by node (" on <node>"), the single answer of a plain Redis under ""."""
    if not cluster:
        return {"": answer}
    return {f" on {node}": value for node, value in answer.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------------------
# The claim


@dataclass(frozen=True)
class ExpressClaim:
    partner_id: str
    resident_id: str
    round_id: str
    batch_id: str
    location: Location
    idempotency_key: str
    digest: str  # of the request (method, path, body): the same key with another body is refused
    ip_prefix: str | None


def _refusal(verdict: str, detail: str | None) -> HuiminError:
    if verdict == "sold_out":
        return ClaimRefused.sold_out()
    if verdict == "limit_reached":
        return ClaimRefused.limit_reached(detail or "")
    if verdict == "mismatch":
        return mismatch()
    return claims_paused()


async def decide_claim(
    claim: ExpressClaim,
    *,
    contexts: ExpressContexts,
    gate: ExpressGate,
    geofence: Geofence,
    clock: Clock,
) -> dict[str, Any]:
    """领取, decided in Redis: the 201 answer (a new voucher, or the stored answer of a retry), or raise
    the refusal. The checks and their codes are the synchronous claim's (`claims.service.claim_voucher`);
    checks that read the database read the worker's copy (`ExpressContexts`)."""
    offer = await contexts.offer(claim.round_id, claim.batch_id)
    if offer.mode != ClaimMode.FIRST_COME:
        raise ClaimRefused.wrong_mode()
    facts = await contexts.facts(claim.partner_id, offer.campaign_id, claim.resident_id)
    if facts is None:
        raise eligibility.unknown_resident(claim.resident_id)
    if not facts.verified:
        raise ClaimRefused.identity_unverified()
    now = clock.now()
    if not offer.opens_at <= now < offer.closes_at:
        raise ClaimRefused.round_not_open(offer.opens_at, offer.closes_at, now)
    district = geofence.district_of(claim.location)
    if district is None:
        raise ClaimRefused.not_eligible_location()
    if facts.blocked:
        raise ClaimRefused.blocked()
    if offer.members_only and not facts.union_member:
        raise ClaimRefused.not_union_member()
    kind, days, until, campaign_closes_at = offer.validity
    voucher_id, code = new_id("vch"), new_voucher_code()
    until_at = valid_until(now, kind=kind, days=days, until=until, campaign_closes_at=campaign_closes_at)
    answer = {
        "voucher_id": voucher_id,
        "code": code,
        "code_display": format_code(code),
        "qr_payload": qr_payload(code),
        **offer.answer_fields,
        "status": VoucherStatus.CLAIMED.value,
        "claimed_at": _iso(now),
        "valid_until": _iso(until_at),
    }
    point = claim.location.to_gcj02()
    record = {
        "id": voucher_id,
        "code": code,
        "campaign_id": offer.campaign_id,
        "batch_id": offer.batch_id,
        "round_id": offer.round_id,
        "resident_id": facts.resident_id,
        "person_id": facts.person_id,
        "value_fen": offer.value_fen,
        "claimed_at": now.isoformat(),  # exact (a float timestamp may lose a microsecond)
        "valid_until": until_at.isoformat(),
        "district": district.value,
        "idempotency_key": claim.idempotency_key,
        "claim_lng": round(point.lng, 3),
        "claim_lat": round(point.lat, 3),
        "claim_ip_prefix": claim.ip_prefix,
        "scopes": [[scope, limit] for scope, limit, _ in offer.limits],
    }
    names = campaign_keys(offer.campaign_id)
    keys = [
        names.answer(claim.partner_id, claim.idempotency_key),
        names.stock(offer.round_id, offer.batch_id),
        *(names.held(scope) for scope, _, _ in offer.limits),
    ]
    verdict = await gate.decide(
        offer.campaign_id,
        keys,
        {
            "i": 0,
            "s": 1,
            "h": [[2 + n, limit, f"{limit} {what}"] for n, (_, limit, what) in enumerate(offer.limits)],
            "p": facts.person_id,
            "d": claim.digest,
            "a": json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
            "r": json.dumps(record, ensure_ascii=False, separators=(",", ":")),
            "round": offer.round_id,
            "batch": offer.batch_id,
        },
    )
    if verdict[0] == "ok":
        return answer
    if verdict[0] == "replay":
        stored, _, detail = verdict[1].partition("\t")
        if stored == "ok":
            replayed: dict[str, Any] = json.loads(detail)
            return replayed
        raise _refusal(stored, detail)
    raise _refusal(verdict[0], verdict[1] if len(verdict) > 1 else None)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------------
# Persisting the stream


_VOUCHERS = cast(Table, VoucherRow.__table__)
_EVENTS = cast(Table, VoucherEventRow.__table__)


async def persist_entries(session: AsyncSession, records: Sequence[dict[str, Any]]) -> list[int]:
    """Write the vouchers of stream records not yet in the database, with their events, counters, stock
    and ledger postings; returns the ids of the `claimed` events written (for the risk stream)."""
    if not records:
        return []
    ids = [record["id"] for record in records]
    known = set((await session.scalars(select(VoucherRow.id).where(VoucherRow.id.in_(ids)))).all())
    fresh = [record for record in records if record["id"] not in known]
    if not fresh:
        return []
    vouchers = [
        {
            **{k: v for k, v in record.items() if k != "scopes"},
            "status": VoucherStatus.CLAIMED.value,
            "claimed_at": datetime.fromisoformat(record["claimed_at"]),
            "valid_until": datetime.fromisoformat(record["valid_until"]),
        }
        for record in fresh
    ]
    connection = await session.connection()
    await connection.execute(insert(_VOUCHERS), vouchers)
    event_ids = list(
        (
            await connection.execute(
                insert(_EVENTS).returning(_EVENTS.c.id),
                [
                    {
                        "voucher_id": v["id"],
                        "kind": "claimed",
                        "value_fen": v["value_fen"],
                        "at": v["claimed_at"],
                    }
                    for v in vouchers
                ],
            )
        ).scalars()
    )
    counts: dict[tuple[str, str], int] = defaultdict(int)
    taken: dict[tuple[str, str], int] = defaultdict(int)
    for record in fresh:
        for scope, _ in record["scopes"]:
            counts[(record["person_id"], scope)] += 1
        taken[(record["round_id"], record["batch_id"])] += 1
    await connection.execute(
        _add_to_counter(session.get_bind().dialect.name),
        [
            {"in_person": person, "in_scope": scope, "in_n": n}
            for (person, scope), n in sorted(counts.items())
        ],
    )
    for (round_id, batch_id), n in sorted(taken.items()):
        await _take_stock(session, round_id, batch_id, n)
    by_campaign: dict[str, list[Any]] = defaultdict(list)
    for voucher in vouchers:
        funding = await ledger.funding_split(session, batch_id=voucher["batch_id"])
        by_campaign[voucher["campaign_id"]].append(
            ledger_domain.claim(voucher["id"], value=voucher["value_fen"], funding=funding)
        )
    for campaign_id, transactions in sorted(by_campaign.items()):
        at = max(v["claimed_at"] for v in vouchers if v["campaign_id"] == campaign_id)
        await ledger.post_many(session, campaign_id=campaign_id, transactions=transactions, at=at)
    return event_ids


_ADD_TO_COUNTER: dict[str, Any] = {}  # by dialect name


def _add_to_counter(dialect: str) -> Any:
    """Add `in_n` to a person's count in a scope (Redis has checked the limit), one statement for many."""
    if dialect not in _ADD_TO_COUNTER:
        upsert = postgres_insert if dialect == "postgresql" else sqlite_insert
        statement = upsert(ClaimCounterRow).values(
            person_id=bindparam("in_person"), scope=bindparam("in_scope"), claimed=bindparam("in_n")
        )
        _ADD_TO_COUNTER[dialect] = statement.on_conflict_do_update(
            index_elements=["person_id", "scope"],
            set_={"claimed": ClaimCounterRow.claimed + statement.excluded.claimed},
        )
    return _ADD_TO_COUNTER[dialect]


async def _take_stock(session: AsyncSession, round_id: str, batch_id: str, quantity: int) -> None:
    """Take `quantity` from the round's stock shards, as Redis already has. Should the database hold
    less (it never should: Redis was provisioned from it), take what is there and say so loudly."""
    shards = (
        await session.execute(
            select(StockShardRow.shard, StockShardRow.remaining)
            .where(
                StockShardRow.round_id == round_id,
                StockShardRow.batch_id == batch_id,
                StockShardRow.remaining > 0,
            )
            .order_by(StockShardRow.shard)
            .with_for_update()
        )
    ).all()
    left = quantity
    for shard, remaining in shards:
        take = min(left, remaining)
        await session.execute(
            update(StockShardRow)
            .where(
                StockShardRow.round_id == round_id,
                StockShardRow.batch_id == batch_id,
                StockShardRow.shard == shard,
            )
            .values(remaining=StockShardRow.remaining - take)
            .execution_options(synchronize_session=False)
        )
        left -= take
        if left == 0:
            return
    log.error(
        "express claims: the database held %d fewer vouchers of batch %s in round %s than Redis issued",
        left,
        batch_id,
        round_id,
    )


# What the database refuses about an entry itself (not its own unavailability): a record that does not
# parse or lacks a field, or a row that breaks a constraint.
_REFUSED_ENTRY = (IntegrityError, DataError, ValueError, KeyError, TypeError)


def _record(fields: dict[Any, Any]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(_text(fields[b"v"] if b"v" in fields else fields["v"]))
    return record


@dataclass
class PersistReport:
    read: int = 0
    written: int = 0
    streams: list[str] = field(default_factory=list)


class ExpressPersister:
    """The consumer: reads every campaign's claim stream in batches and persists them (one per worker;
    they share the consumer group, so each entry goes to one of them; entries a dead worker had read
    are taken over after `CLAIM_IDLE`)."""

    BATCH = 500
    CLAIM_IDLE_MS = 5_000

    def __init__(
        self,
        redis: Redis | RedisCluster,
        sessions: async_sessionmaker[AsyncSession],
        *,
        consumer: str | None = None,
        publish_to: Redis | RedisCluster | None = None,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.publish_to = publish_to
        self._stopping = asyncio.Event()
        self._groups: set[str] = set()

    async def run(self, *, idle_wait: float = 0.05) -> None:
        while not self._stopping.is_set():
            try:
                report = await self.drain_once()
            except Exception as error:  # keep consuming; the entries stay pending and are retried
                log.warning("express claims not persisted yet (retrying): %r", error)
                report = PersistReport()
                await asyncio.sleep(0.5)
            if report.read == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=idle_wait)

    def stop(self) -> None:
        self._stopping.set()

    async def drain_once(self, *, take_over_idle_ms: int | None = None) -> PersistReport:
        """Read and persist one batch of each campaign's stream: entries this consumer read before and
        did not acknowledge first, then those idle at another consumer, then new ones."""
        report = PersistReport()
        for campaign_id in sorted(_text(m) for m in await self.redis.smembers(_STREAMS)):
            stream = campaign_keys(campaign_id).stream
            if stream not in self._groups:
                try:
                    await self.redis.xgroup_create(stream, _GROUP, id="0", mkstream=True)
                except ResponseError as error:
                    if "BUSYGROUP" not in str(error):
                        raise
                self._groups.add(stream)
            try:
                entries = await self._read(stream, "0")  # our own pending first (a failed commit)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                self._groups.discard(stream)  # the stream went with Redis's memory: made again next time
                continue
            if not entries:
                idle = self.CLAIM_IDLE_MS if take_over_idle_ms is None else take_over_idle_ms
                taken = await self.redis.xautoclaim(
                    stream, _GROUP, self.consumer, min_idle_time=idle, start_id="0-0", count=self.BATCH
                )
                entries = [(entry_id, fields) for entry_id, fields in taken[1] if fields]
            if not entries:
                entries = await self._read(stream, ">")
            await self._report_lag(stream, entries)
            if not entries:
                continue
            try:
                async with unit_of_work(self.sessions) as session:
                    event_ids = await persist_entries(session, [_record(fields) for _, fields in entries])
            except _REFUSED_ENTRY:
                # One bad entry must not hold up its campaign's stream: each alone, the bad set aside.
                event_ids = await self._one_by_one(stream, entries)
            await self.redis.xack(stream, _GROUP, *[entry_id for entry_id, _ in entries])
            await self.redis.xdel(stream, *[entry_id for entry_id, _ in entries])
            report.read += len(entries)
            report.written += len(event_ids)
            report.streams.append(stream)
            if event_ids:
                await risk_stream.publish(
                    self.publish_to, [(Source.CLAIMS, event_id) for event_id in event_ids]
                )
        return report

    async def _one_by_one(self, stream: str, entries: list[tuple[Any, dict[Any, Any]]]) -> list[int]:
        """Persist each entry in its own transaction. One the database refuses for what it is (a broken
        record, a constraint: a worker committing the same entry meanwhile is not one, the retry finds it
        persisted) goes to the campaign's dead-letter stream `…:dead` with the error, logged as an
        error for the operator: its resident was told of a voucher the database does not hold. A failure
        of the database itself (connection, timeout) propagates: the batch stays pending and is retried."""
        event_ids: list[int] = []
        for entry_id, fields in entries:
            try:
                async with unit_of_work(self.sessions) as session:
                    event_ids += await persist_entries(session, [_record(fields)])
            except _REFUSED_ENTRY as error:
                if await self._persisted(fields):
                    continue  # another worker committed it meanwhile (it had read it first)
                log.error(
                    "express claim %s of %s set aside, not persisted: %r", _text(entry_id), stream, error
                )
                await self.redis.xadd(
                    stream.removesuffix(":claims") + ":dead",
                    {
                        "entry": _text(entry_id),
                        "v": _text(fields.get(b"v", fields.get("v", b""))),
                        "error": repr(error)[:2000],
                    },
                )
        return event_ids

    async def _persisted(self, fields: dict[Any, Any]) -> bool:
        try:
            voucher_id = str(_record(fields)["id"])
        except _REFUSED_ENTRY:
            return False
        async with unit_of_work(self.sessions) as session:
            return await session.get(VoucherRow, voucher_id) is not None

    async def _report_lag(self, stream: str, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        """The metrics' view of the backlog: entries in the stream (persisted ones are deleted), and the
        age of the oldest entry read now (its id is the millisecond Redis appended it)."""
        oldest = 0.0
        if entries:
            appended_ms = int(_text(entries[0][0]).partition("-")[0])
            oldest = max(0.0, systime.time() - appended_ms / 1000)
        set_stream_lag(stream, _GROUP, entries=int(await self.redis.xlen(stream)), seconds=oldest)

    async def _read(self, stream: str, start: str) -> list[tuple[Any, dict[Any, Any]]]:
        answer: Any = await self.redis.xreadgroup(_GROUP, self.consumer, {stream: start}, count=self.BATCH)
        if not answer:
            return []
        [(_, entries)] = answer
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:  # deleted after their commit, before this consumer's acknowledgement: nothing to redo
            await self.redis.xack(stream, _GROUP, *gone)
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def pending(self) -> int:
        """Entries not yet persisted, over every campaign: read by nobody yet, or read and unacknowledged."""
        total = 0
        for campaign_id in await self.redis.smembers(_STREAMS):
            total += int(await self.redis.xlen(campaign_keys(_text(campaign_id)).stream))
        return total


async def reconcile_express(
    sessions: async_sessionmaker[AsyncSession],
    *,
    gate: ExpressGate,
    persister: ExpressPersister,
    clock: Clock,
    campaign_id: str | None = None,
) -> int:
    """Rebuild the express counters of every campaign (or of `campaign_id`) with a round not yet closed
    from PostgreSQL; returns how many campaigns were provisioned. Each campaign's claims are paused, its
    stream persisted (taking over every entry, whoever had read it), then its stock and counts written
    and its claims resumed."""
    async with unit_of_work(sessions) as session:
        rounds = [r for r in await ClaimsRepository(session).rounds(None) if r.closes_at > clock.now()]
    by_campaign: dict[str, list[RoundRow]] = defaultdict(list)
    for round_ in rounds:
        if campaign_id is None or round_.campaign_id == campaign_id:
            by_campaign[round_.campaign_id].append(round_)
    for campaign, campaign_rounds in sorted(by_campaign.items()):
        await gate.pause(campaign)
        await gate.redis.sadd(_STREAMS, campaign)
        await _drain_all(persister)
        async with unit_of_work(sessions) as session:
            repository = ClaimsRepository(session)
            remaining = await repository.remaining([r.id for r in campaign_rounds])
            scopes = await _campaign_scopes(session, campaign)
            rows = (
                await session.execute(
                    select(ClaimCounterRow.scope, ClaimCounterRow.person_id, ClaimCounterRow.claimed).where(
                        or_(
                            ClaimCounterRow.scope.in_(scopes),
                            ClaimCounterRow.scope.like(category_scope(campaign, "%")),
                        )
                    )
                )
            ).all()
        held: dict[str, dict[str, int]] = defaultdict(dict)
        for scope in scopes:
            held[scope] = {}
        for scope, person_id, claimed in rows:
            held[scope][person_id] = claimed
        await gate.provision(campaign, remaining, dict(held))
    return len(by_campaign)


@contextlib.asynccontextmanager
async def paused_for_the_database(
    sessions: async_sessionmaker[AsyncSession],
    *,
    gate: ExpressGate,
    persister: ExpressPersister,
    clock: Clock,
    campaign_id: str,
) -> AsyncIterator[None]:
    """For work that issues vouchers in the database outside express claims (a lottery draw): the
    campaign's express claims pause and its stream is persisted first, so the database's counters are
    complete; afterwards Redis is rebuilt from the database (with what the work issued) and claims
    resume. Claims arriving meanwhile get 503 `claims_paused`."""
    await gate.pause(campaign_id)
    try:
        await _drain_all(persister)
        yield
    finally:
        await reconcile_express(
            sessions, gate=gate, persister=persister, clock=clock, campaign_id=campaign_id
        )


async def _drain_all(persister: ExpressPersister) -> None:
    """Persist every entry of the streams, taking over those a worker has read and not acknowledged. A
    worker committing the same entries meanwhile makes this transaction fail on the voucher's primary
    key; the next pass finds them persisted."""
    for _ in range(50):
        try:
            while (await persister.drain_once(take_over_idle_ms=0)).read:
                pass
            return
        except IntegrityError:
            await asyncio.sleep(0.2)
    raise HuiminError("the claim streams could not be persisted; retry", code="reconcile_failed", status=503)


async def _campaign_scopes(session: AsyncSession, campaign_id: str) -> list[str]:
    """The counter scopes of a campaign's limits other than its categories' (see `service._limits`)."""
    from huimin.campaigns.models import RoundBatchRow

    pairs = (
        await session.execute(
            select(RoundBatchRow.round_id, RoundBatchRow.batch_id)
            .join(RoundRow, RoundRow.id == RoundBatchRow.round_id)
            .where(RoundRow.campaign_id == campaign_id)
        )
    ).all()
    scopes = {campaign_scope(campaign_id)}
    for round_id, batch_id in pairs:
        scopes.add(round_scope(round_id, batch_id))
        scopes.add(batch_scope(batch_id))
    return sorted(scopes)
