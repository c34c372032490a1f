"""customer.validation.{succeeded,failed}: a customer's vouchers or promotions checked."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Validation


class ValidationEvent(EventData):
    validation: Validation | None = None


class ValidationActivity(Activity):
    data: ValidationEvent


class ValidationSucceeded(ValidationActivity, tag="customer.validation.succeeded"): ...


class ValidationFailed(ValidationActivity, tag="customer.validation.failed"): ...


EVENTS = (
    ValidationSucceeded,
    ValidationFailed,
)
