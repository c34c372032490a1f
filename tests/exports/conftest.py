"""A live server for the exports API (Voucherify's SDK speaks plain HTTP), and seed rows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from service import db
from service.app import create_app
from tests.conftest import free_port, settings

APP_ID = "app-analytics"
APP_TOKEN = "tok-analytics-secret"


class LiveServer:
    def __init__(self, database_url: str, **overrides: Any) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        app = create_app(settings(api_keys=((APP_ID, APP_TOKEN),), **overrides), database_url)
        config = uvicorn.Config(app, port=self.port, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(database_url: str, conn: db.Connection) -> Iterator[LiveServer]:
    """The real app on a loopback port, with API key APP_ID/APP_TOKEN, tables emptied."""
    with LiveServer(database_url) as server:
        yield server


SEED = """
INSERT INTO customers (id, source_id, name, email, created_at, updated_at, metadata,
                       loyalty_points, birthdate, is_stub, last_event_at, last_event_id)
VALUES
 ('cust_a', 'ann@example.com', 'Ann', 'ann@example.com', '2024-01-01T10:00:00Z',
  '2024-01-05T10:00:00Z', '{"tier": "gold", "visits": 12, "vip": true}', 500, '1990-04-01',
  false, now(), 'e1'),
 ('cust_b', 'bob@example.com', 'Bob', 'bob@shop.test', '2024-02-01T10:00:00Z',
  '2024-02-02T10:00:00Z', '{"tier": "silver", "city": "Oslo", "vip": false}', 20, NULL,
  false, now(), 'e2'),
 ('cust_c', 'cid', 'Cy', NULL, '2024-03-01T10:00:00Z', NULL, NULL, NULL, NULL, true, now(), 'e3');
INSERT INTO orders (id, source_id, created_at, status, amount, total_amount, customer_id,
                    metadata, is_stub, last_event_at, last_event_id)
VALUES
 ('ord_1', 'S-1', '2024-01-02T00:00:00Z', 'PAID', 1000, 900, 'cust_a', '{"store": "north"}',
  false, now(), 'e4'),
 ('ord_2', 'S-2', '2024-01-03T00:00:00Z', 'CREATED', 2500, 2500, 'cust_b', '{"store": "south"}',
  false, now(), 'e5'),
 ('ord_3', 'S-3', '2024-01-04T00:00:00Z', 'CANCELED', 50, 50, 'cust_a', NULL, false, now(), 'e6');
INSERT INTO vouchers (id, code, voucher_type, value, discount_type, campaign, campaign_id, active,
                      validity_day_of_week, is_referral_code, created_at, customer_id,
                      last_event_at, last_event_id)
VALUES
 ('v_1', 'SUMMER10', 'DISCOUNT_VOUCHER', 10, 'PERCENT', 'Summer', 'camp_s', true, '{1,2,3}',
  false, '2024-01-01T00:00:00Z', 'cust_a', now(), 'e7'),
 ('v_2', 'GIFT50', 'GIFT_VOUCHER', 5000, NULL, 'Gifts', 'camp_g', false, NULL,
  false, '2024-01-02T00:00:00Z', 'cust_b', now(), 'e8');
"""


async def seed(conn: db.Connection) -> None:
    await conn.execute(SEED)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
