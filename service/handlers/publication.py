"""Publication family: customer.publication.{succeeded,failed} -> `publications`."""

from __future__ import annotations

from service.events.publications import PublicationActivity
from service.events.times import parse_time
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import upsert

UPSERT_PUBLICATION = upsert(
    "publications",
    ("id", "voucher_code", "customer_id", "customer_source_id", "date", "channel", "campaign",
     "campaign_id", "result", "source_id", "tracking_id", "metadata",
     "last_event_at", "last_event_id"),
)  # fmt: skip


# customer.publication.<outcome>: the data's `result` is SUCCESS in either (its schema's
# only value), so the event type says how the publication went.
RESULT_BY_TYPE = {
    "customer.publication.succeeded": "SUCCESS",
    "customer.publication.failed": "FAILURE",
}


def handle(w: Writes, meta: Meta, event: PublicationActivity) -> None:
    data = event.data
    publication = require(data.publication, "data.publication")
    publication_id = require(publication.id, "data.publication.id")
    customer_id = _entities.customer_stub(w, meta, data.customer)
    voucher = publication.voucher
    campaign = data.campaign
    own = publication.customer  # the publication's own customer object, where sent
    w.customer_id = publication.customer_id or (own.id if own else None)
    w.add(
        UPSERT_PUBLICATION,
        publication_id,
        voucher.code if voucher else None,
        publication.customer_id or (own.id if own else None) or customer_id,
        (data.customer.source_id if data.customer else None) or (own.source_id if own else None),
        parse_time(publication.created_at) or meta.at,
        publication.channel,
        (campaign.name if campaign else None) or (voucher.campaign if voucher else None),
        campaign.id if campaign else None,
        RESULT_BY_TYPE[meta.type],
        publication.source_id,
        publication.tracking_id,
        publication.metadata,
        meta.at,
        meta.event_id,
    )
