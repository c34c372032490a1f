"""Distribution family: customer.<channel>.{sent,recovered,failed} -> `distributions`."""

from __future__ import annotations

from service.events.distributions import DistributionActivity
from service.events.times import parse_time
from service.handlers import Meta, Writes, _entities
from service.handlers._sql import append

INSERT_DISTRIBUTION = append(
    "distributions",
    ("event_id", "customer_id", "channel", "status", "occurred_at", "distribution"),
)


def handle(w: Writes, meta: Meta, event: DistributionActivity) -> None:
    data = event.data
    customer_id = _entities.customer_stub(w, meta, data.customer)
    # The type names both: customer.<channel>.<sent|recovered|failed>.
    _, channel, status = meta.type.split(".")
    occurred = parse_time(data.sent_at or data.recovered_at or data.failed_at) or meta.at
    w.add(
        INSERT_DISTRIBUTION,
        meta.event_id,
        customer_id,
        channel,
        status,
        occurred,
        data.distribution,
    )
