"""customer.publication.{succeeded,failed}: a voucher published to a customer."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Campaign, Publication


class PublicationEvent(EventData):
    campaign: Campaign | None = None
    publication: Publication | None = None


class PublicationActivity(Activity):
    data: PublicationEvent


class PublicationSucceeded(PublicationActivity, tag="customer.publication.succeeded"): ...


class PublicationFailed(PublicationActivity, tag="customer.publication.failed"): ...


EVENTS = (
    PublicationSucceeded,
    PublicationFailed,
)
