"""Prometheus metrics: what happened to each delivery, and how long it took."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# `*_created` timestamps double the series count and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

# Voucherify gives up at 10 s; the buckets resolve the range an operator cares about.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One registry per app, so tests and several apps in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The process' own RSS, CPU and open files, and its garbage collections: what
        # "memory per worker" and a pause-ridden tail are watched with (read at scrape time).
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
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

        self.batch_events = Histogram(
            "voucherify_writer_batch_events",
            "Events written per group-commit transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "voucherify_writer_batch_seconds",
            "Time to combine and commit one batch (handlers run as each delivery arrives).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # By the error key of the answer: a botched secret rotation shows as
        # reason="invalid_signature" alone, not drowned among other refusals.
        self.refusals = Counter(
            "voucherify_webhook_refusals",
            "Deliveries refused with a 4xx, by the error key of the answer (a fixed set).",
            ["reason"],
            registry=self.registry,
        )
        self._series: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self.queue_depth = Gauge(
            "voucherify_writer_queue_depth",
            "Deliveries waiting for a group commit.",
            registry=self.registry,
        )

    def watch_head_refusals(self, counts: Mapping[int, int]) -> None:
        """Requests the HTTP layer refused before their head was whole, read at scrape."""
        self.registry.register(_HeadRefusals(counts))

    def watch_stored_after_answer(self, count: Callable[[], int]) -> None:
        """Events the writer committed after their delivery was answered, read at scrape."""
        self.registry.register(
            _ReadAtScrape(
                "voucherify_writer_stored_after_answer",
                "Events committed after their delivery was answered 503 (past "
                "WRITE_TIMEOUT_SECONDS) or abandoned by its client: stored, though the "
                "answer said otherwise; Voucherify's retry is answered 'duplicate'.",
                count,
            )
        )

    def observe_batch(self, events: int, seconds: float) -> None:
        self.batch_events.observe(events)
        self.batch_seconds.observe(seconds)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def observe(self, family: str, outcome: str, seconds: float) -> None:
        # One delivery's series, looked up once per (family, outcome): `labels()` validates
        # and locks on every call, 3 of the 5 us an observation cost (a few dozen pairs).
        series = self._series.get((family, outcome))
        if series is None:
            series = self._series[family, outcome] = (
                self.deliveries.labels(family=family, outcome=outcome),
                self.latency.labels(outcome=outcome),
            )
        count, latency = series
        count.inc()
        latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _HeadRefusals(Collector):
    def __init__(self, counts: Mapping[int, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "voucherify_http_head_refusals",
            "Requests refused before their head was whole (408: too slow, 431: too large); "
            "not deliveries: no path or event was read.",
            labels=["status"],
        )
        for status in (408, 431):  # both series always, so rate() starts from zero
            family.add_metric([str(status)], self.counts.get(status, 0))
        yield family


class _ReadAtScrape(Collector):
    """A counter kept as a plain int by its owner (no lock or label lookup on its path)."""

    def __init__(self, name: str, documentation: str, count: Callable[[], int]) -> None:
        self.name, self.documentation, self.count = name, documentation, count

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.count())
