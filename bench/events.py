"""Realistic signed webhook bodies for the benchmark: every family, 1-3 KB, ~5% retries.

Bodies are built from small templates rather than the test fixtures (which carry every
optional property the OpenAPI file knows and run to 15 KB), shaped like the events
Voucherify sends, with metadata padding so sizes spread over 1-3 KB.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import msgspec

from service import signing

_json = msgspec.json.Encoder()


def _customer(rng: random.Random, n: int) -> dict[str, Any]:
    cid = f"cust_{n % 20000:06d}"
    return {"id": cid, "source_id": f"{cid}@example.com", "name": f"Customer {n % 20000}",
            "email": f"{cid}@example.com", "metadata": {"segment": rng.choice("ABCD")},
            "object": "customer"}  # fmt: skip


def _voucher(rng: random.Random, n: int, kind: str = "LOYALTY_CARD") -> dict[str, Any]:
    return {"id": f"v_{n % 5000:05d}", "code": f"CODE{n % 5000:05d}", "type": kind,
            "campaign": "Loyalty 2026", "campaign_id": "camp_loyalty",
            "loyalty_card": {"points": rng.randint(0, 5000), "balance": rng.randint(0, 5000)},
            "gift": {"amount": 10000, "balance": rng.randint(0, 10000)}, "active": True,
            "created_at": "2026-01-01T00:00:00.000Z", "object": "voucher"}  # fmt: skip


def _order(rng: random.Random, n: int) -> dict[str, Any]:
    items = [{"product_id": f"prod_{rng.randint(1, 300)}", "quantity": rng.randint(1, 3),
              "amount": 1500, "price": 1500, "object": "order_item"}
             for _ in range(rng.randint(1, 3))]  # fmt: skip
    return {"id": f"ord_{n:08d}", "source_id": f"S{n}", "status": "PAID", "amount": 4500,
            "total_amount": 4000, "discount_amount": 500, "items": items,
            "created_at": "2026-11-01T10:00:00.000Z", "object": "order"}  # fmt: skip


def _data(rng: random.Random, event_type: str, n: int) -> dict[str, Any]:
    customer = _customer(rng, n)
    family = event_type.split(".")[1]
    if family == "order":
        return {"customer": customer, "order": _order(rng, n)}
    if family == "redemption":
        return {"customer": customer, "order": _order(rng, n), "voucher": _voucher(rng, n),
                "redemption": {"id": f"r_{n:08d}", "date": "2026-11-01T10:00:00.000Z",
                               "result": "SUCCESS", "status": "SUCCEEDED", "amount": 500,
                               "object": "redemption", "metadata": {}},
                "campaign": {"id": "camp_loyalty", "name": "Loyalty 2026"}}  # fmt: skip
    if family == "loyalty":
        tier = {"id": f"ltr_{rng.randint(1, 4)}", "name": "Gold", "campaign_id": "camp_loyalty"}
        return {"customer": customer, "campaign": {"id": "camp_loyalty"}, "loyalty_tier": tier,
                "loyalty_tier_to": tier, "loyalty_tier_from": tier,
                "created_at": "2026-11-01T10:00:00.000Z"}  # fmt: skip
    if family == "voucher":
        return {"customer": customer, "voucher": _voucher(rng, n),
                "campaign": {"id": "camp_loyalty", "name": "Loyalty 2026"},
                "transaction": {"id": f"vtx_{n:08d}", "type": "POINTS_ACCRUAL",
                                "voucher_id": f"v_{n % 5000:05d}", "campaign_id": "camp_loyalty",
                                "source": "API", "created_at": "2026-11-01T10:00:00.000Z",
                                "details": {"balance": {"points": 100,
                                                        "balance": 1200}}}}  # fmt: skip
    if family == "segment":
        return {"customer": customer, "segment": {"id": f"seg_{rng.randint(1, 20)}",
                                                  "name": "Active"}}  # fmt: skip
    if family == "publication":
        return {"customer": customer, "campaign": {"id": "camp_loyalty", "name": "Loyalty"},
                "publication": {"id": f"pub_{n:08d}", "channel": "API", "result": "SUCCESS",
                                "customer_id": customer["id"],
                                "created_at": "2026-11-01T10:00:00.000Z",
                                "voucher": {"code": f"CODE{n % 5000:05d}"}}}  # fmt: skip
    if family in ("sms", "email", "braze"):
        return {"customer": customer, "sent_at": "2026-11-01T10:00:00.000Z",
                "distribution": {"id": f"distr_{n}", "channel": family}}  # fmt: skip
    if family == "custom_event":
        return {"customer": customer, "event": {"id": f"evcus_ce_{n}", "type": "page_view",
                                                "metadata": {"path": "/checkout"}}}  # fmt: skip
    if family == "validation":
        return {
            "customer": customer,
            "validation": {
                "id": f"valid_{n:08d}",
                "status": "VALID",
                "created_at": "2026-11-01T10:00:00.000Z",
            },
        }
    if family == "holder":
        return {"customer": customer, "voucher": _voucher(rng, n),
                "campaign": {"id": "camp_loyalty"},
                "holder": {"id": f"rh_{n:08d}", "redeemable_id": f"v_{n % 5000:05d}",
                           "customer_id": customer["id"], "holder_role": "OWNER"}}  # fmt: skip
    if family == "referred":
        return {
            "customer": customer,
            "referrer": _customer(rng, n + 7),
            "campaign": {"id": "camp_referral"},
            "voucher": _voucher(rng, n, "DISCOUNT_VOUCHER"),
        }
    if family == "rewarded":
        return {"customer": customer, "voucher": _voucher(rng, n),
                "campaign": {"id": "camp_referral"}, "reward": {"id": "rew_1", "type": "COIN"},
                "balance": {"points": 100}}  # fmt: skip
    return {"customer": customer}


TYPES = [
    ("customer.order.paid", 14), ("customer.order.created", 8),
    ("customer.redemption.succeeded", 14), ("customer.voucher.loyalty_card.points_added", 14),
    ("customer.loyalty.tier.upgraded", 6), ("customer.segment.entered", 8),
    ("customer.publication.succeeded", 8), ("customer.sms.sent", 8),
    ("customer.email.sent", 8), ("customer.custom_event", 6), ("customer.updated", 6),
    ("customer.validation.succeeded", 4), ("customer.holder.assignment.created", 2),
    ("customer.referred", 2), ("customer.rewarded", 2),
]  # fmt: skip


def events(count: int, secret: str, seed: int = 7) -> Iterator[tuple[str, str, bytes]]:
    """(event id, signature, body) for `count` deliveries; ~5% repeat an earlier one."""
    rng = random.Random(seed)
    kinds = [t for t, weight in TYPES for _ in range(weight)]
    sent: list[tuple[str, str, bytes]] = []
    for n in range(count):
        if sent and rng.random() < 0.05:
            yield rng.choice(sent[-1000:])
            continue
        event_type = rng.choice(kinds)
        event_id = f"evcus_bench_{seed}_{n:09d}"
        data = _data(rng, event_type, n)
        event: dict[str, Any] = {"id": event_id, "type": event_type,
                 "created_at": "2026-11-01T10:00:00.000Z", "group_id": f"v-{n:012x}",
                 "event_source": {"channel": "API"}, "data": data}  # fmt: skip
        body = _json.encode(event)
        target = rng.randint(1024, 3072)
        if len(body) < target:
            data["customer"]["metadata"]["note"] = "x" * (target - len(body) - 12)
            body = _json.encode(event)
        item = (event_id, signing.sign(secret, body), body)
        sent.append(item)
        yield item
