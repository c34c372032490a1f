"""Prometheus metrics: what happened to each delivery, and how long it took."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# `*_created` timestamps double the series count and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

# Voucherify gives up at 10 s; the buckets resolve the range an operator cares about.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One registry per app, so tests and several apps in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "voucherify_webhook_deliveries",
            "Webhook deliveries answered, by event family and outcome.",
            ["family", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "voucherify_webhook_delivery_seconds",
            "Time from request received to answer, by outcome.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, family: str, outcome: str, seconds: float) -> None:
        self.deliveries.labels(family=family, outcome=outcome).inc()
        self.latency.labels(outcome=outcome).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
