"""Prometheus metrics of the runtime, on a registry of its own, cheap enough for every request."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector


def latency_buckets() -> tuple[float, ...]:
    """Geometric buckets from 100 µs to 10 s (ratio ~1.33) so p50..p99 interpolate within ~15%."""
    buckets: list[float] = []
    value = 100e-6
    while value < 10.0:
        buckets.append(round(value, 7))
        value *= 4 / 3
    buckets.append(10.0)
    return tuple(buckets)


def batch_buckets() -> tuple[float, ...]:
    return (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024)


OUTCOMES = ("success", "client_error", "server_error")


# prometheus_client's own metric classes take a lock and walk every bucket per observation;
# with ~35 buckets and six observations per request that was half the cost of a small
# inference. Every observation here happens on the event loop thread, so plain numbers suffice
# and the exposition is produced by a custom collector.


class FastCounter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class FastGauge:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class FastHistogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # `le` is inclusive: the first bound >= value takes the observation.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


class RuntimeMetrics(Collector):
    """Every metric the runtime exports, for one served model and version."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model: str, version: str) -> None:
        self.labels = [model, version]
        self.requests = {o: FastCounter() for o in OUTCOMES}
        latency = latency_buckets()
        self.request_seconds = FastHistogram(latency)
        self.queue_seconds = FastHistogram(latency)
        self.inference_seconds = FastHistogram(latency)
        self.batch_size = FastHistogram(batch_buckets())
        self.in_flight = FastGauge()
        self.ready = FastGauge()
        self.feedback_total = FastCounter()
        self.feedback_correct = FastCounter()
        self.feedback_abs_error = FastCounter()
        self.feedback_unknown = FastCounter()
        self.feedback_invalid = FastCounter()
        self.predictions_held = FastGauge()
        self.predictions_evicted = FastCounter()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def _counter(self, name: str, doc: str, value: float) -> Metric:
        family = CounterMetricFamily(name, doc, labels=["model", "version"])
        family.add_metric(self.labels, value)
        return family

    def _gauge(self, name: str, doc: str, value: float) -> Metric:
        family = GaugeMetricFamily(name, doc, labels=["model", "version"])
        family.add_metric(self.labels, value)
        return family

    def _histogram(self, name: str, doc: str, histogram: FastHistogram) -> Metric:
        family = HistogramMetricFamily(name, doc, labels=["model", "version"])
        family.add_metric(self.labels, histogram.cumulative(), histogram.total)
        return family

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelship_requests",
            "Inference requests by outcome (success, client_error, server_error).",
            labels=["model", "version", "outcome"],
        )
        for outcome, counter in self.requests.items():
            requests.add_metric([*self.labels, outcome], counter.value)
        yield requests
        yield self._histogram(
            "modelship_request_duration_seconds",
            "Time from a decoded request to its encoded response.",
            self.request_seconds,
        )
        yield self._histogram(
            "modelship_queue_duration_seconds",
            "Time a request waited for the model (batching queue and executor).",
            self.queue_seconds,
        )
        yield self._histogram(
            "modelship_inference_duration_seconds",
            "Time ONNX Runtime spent on the batch that carried a request.",
            self.inference_seconds,
        )
        yield self._histogram(
            "modelship_batch_size",
            "Per request: how many requests shared its model execution.",
            self.batch_size,
        )
        yield self._gauge(
            "modelship_requests_in_flight",
            "Inference requests being served right now.",
            self.in_flight.value,
        )
        yield self._gauge(
            "modelship_ready",
            "1 when the model is warmed up and accepting requests.",
            self.ready.value,
        )
        yield self._counter(
            "modelship_feedback_predictions",
            "Predictions that received a label (rows).",
            self.feedback_total.value,
        )
        yield self._counter(
            "modelship_feedback_correct",
            "Labelled predictions that matched their label (classification rows).",
            self.feedback_correct.value,
        )
        yield self._counter(
            "modelship_feedback_absolute_error",
            "Sum of |prediction - label| over labelled regression rows.",
            self.feedback_abs_error.value,
        )
        yield self._counter(
            "modelship_feedback_unknown_ids",
            "Labels naming a prediction id we do not hold (unseen, expired or labelled already).",
            self.feedback_unknown.value,
        )
        yield self._counter(
            "modelship_feedback_invalid",
            "Labels whose shape or type cannot be compared with their prediction.",
            self.feedback_invalid.value,
        )
        yield self._gauge(
            "modelship_feedback_predictions_held",
            "Predictions kept in memory waiting for a label.",
            self.predictions_held.value,
        )
        yield self._counter(
            "modelship_feedback_predictions_evicted",
            "Predictions dropped unlabelled because of retention or the entry limit.",
            self.predictions_evicted.value,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
