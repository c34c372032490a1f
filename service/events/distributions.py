"""customer.<channel>.{sent,recovered,failed}: messages sent through nine channels.

The channel and outcome are in the type itself; `data` carries when it happened and the
channel-specific `distribution` object, kept as-is.
"""

from __future__ import annotations

from typing import Any

from service.events._base import Activity, EventData


class DistributionEvent(EventData):
    distribution: dict[str, Any] | None = None
    sent_at: str | None = None
    recovered_at: str | None = None
    failed_at: str | None = None


class DistributionActivity(Activity):
    data: DistributionEvent


class SmsSent(DistributionActivity, tag="customer.sms.sent"): ...


class SmsRecovered(DistributionActivity, tag="customer.sms.recovered"): ...


class SmsFailed(DistributionActivity, tag="customer.sms.failed"): ...


class EmailSent(DistributionActivity, tag="customer.email.sent"): ...


class EmailRecovered(DistributionActivity, tag="customer.email.recovered"): ...


class EmailFailed(DistributionActivity, tag="customer.email.failed"): ...


class ActiveCampaignSent(DistributionActivity, tag="customer.activecampaign.sent"): ...


class ActiveCampaignRecovered(DistributionActivity, tag="customer.activecampaign.recovered"): ...


class ActiveCampaignFailed(DistributionActivity, tag="customer.activecampaign.failed"): ...


class BrazeSent(DistributionActivity, tag="customer.braze.sent"): ...


class BrazeRecovered(DistributionActivity, tag="customer.braze.recovered"): ...


class BrazeFailed(DistributionActivity, tag="customer.braze.failed"): ...


class MailchimpSent(DistributionActivity, tag="customer.mailchimp.sent"): ...


class MailchimpRecovered(DistributionActivity, tag="customer.mailchimp.recovered"): ...


class MailchimpFailed(DistributionActivity, tag="customer.mailchimp.failed"): ...


class IntercomSent(DistributionActivity, tag="customer.intercom.sent"): ...


class IntercomRecovered(DistributionActivity, tag="customer.intercom.recovered"): ...


class IntercomFailed(DistributionActivity, tag="customer.intercom.failed"): ...


class ShopifySent(DistributionActivity, tag="customer.shopify.sent"): ...


class ShopifyRecovered(DistributionActivity, tag="customer.shopify.recovered"): ...


class ShopifyFailed(DistributionActivity, tag="customer.shopify.failed"): ...


class KlaviyoSent(DistributionActivity, tag="customer.klaviyo.sent"): ...


class KlaviyoRecovered(DistributionActivity, tag="customer.klaviyo.recovered"): ...


class KlaviyoFailed(DistributionActivity, tag="customer.klaviyo.failed"): ...


class BatchSent(DistributionActivity, tag="customer.batch.sent"): ...


class BatchRecovered(DistributionActivity, tag="customer.batch.recovered"): ...


class BatchFailed(DistributionActivity, tag="customer.batch.failed"): ...


EVENTS = (
    SmsSent,
    SmsRecovered,
    SmsFailed,
    EmailSent,
    EmailRecovered,
    EmailFailed,
    ActiveCampaignSent,
    ActiveCampaignRecovered,
    ActiveCampaignFailed,
    BrazeSent,
    BrazeRecovered,
    BrazeFailed,
    MailchimpSent,
    MailchimpRecovered,
    MailchimpFailed,
    IntercomSent,
    IntercomRecovered,
    IntercomFailed,
    ShopifySent,
    ShopifyRecovered,
    ShopifyFailed,
    KlaviyoSent,
    KlaviyoRecovered,
    KlaviyoFailed,
    BatchSent,
    BatchRecovered,
    BatchFailed,
)
