"""Prometheus metrics of the runtime, on a registry of its own, cheap enough for every request."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

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
# Why a request was refused without running (errors.Overloaded.reason).
SHED_REASONS = ("queue_full", "deadline")
# Labels of every series; docs/metrics.md is their contract with dashboards and alerts.
IDENTITY = ["model", "revision", "variant"]
# Accuracy counters are kept per (revision, variant) that made the prediction, which a signed
# token may name for another pod; this bounds how many such series one pod exports.
MAX_ACCURACY_SERIES = 16


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


class AccuracyCounters:
    """Labelled predictions of one (revision, variant): the inputs of accuracy and MAE (and of
    the spread of absolute errors, which a test of MAE needs)."""

    __slots__ = ("abs_error", "correct", "predictions", "squared_error")

    def __init__(self) -> None:
        self.predictions = FastCounter()
        self.correct = FastCounter()
        self.abs_error = FastCounter()
        self.squared_error = FastCounter()


class RuntimeMetrics(Collector):
    """Every metric the runtime exports, for one served model, revision and build variant.

    `revision` and `variant` separate a canary from its stable version (and one build variant
    from another) in PromQL; they are the only identity labels, so cardinality stays per pod.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model: str, revision: str, variant: str = "model") -> None:
        self.labels = [model, revision, variant]
        self.requests = {o: FastCounter() for o in OUTCOMES}
        latency = latency_buckets()
        self.request_seconds = FastHistogram(latency)
        self.queue_seconds = FastHistogram(latency)
        self.inference_seconds = FastHistogram(latency)
        self.batch_size = FastHistogram(batch_buckets())
        self.in_flight = FastGauge()
        self.shed = {r: FastCounter() for r in SHED_REASONS}
        self.abandoned = FastCounter()
        # Incremented where the model runs: the event loop, or the one worker thread
        # (DataPlane's executor), never both, so a single writer needs no lock.
        self.model_runs = FastCounter()
        # Admitted requests not yet running; read at scrape time from whoever queues them.
        self.queue_depth: Callable[[], int] = lambda: 0
        self.ready = FastGauge()
        # This pod's own series come first and always exist; others only once a token names them.
        self.own_accuracy = AccuracyCounters()
        self.accuracy: dict[tuple[str, str], AccuracyCounters] = {
            (revision, variant): self.own_accuracy
        }
        self.feedback_unknown = FastCounter()
        self.feedback_invalid = FastCounter()
        self.predictions_held = FastGauge()
        self.predictions_held_bytes = FastGauge()
        self.predictions_evicted = FastCounter()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def accuracy_for(self, revision: str, variant: str) -> AccuracyCounters | None:
        """The counters of predictions made by (revision, variant); None past the series cap."""
        counters = self.accuracy.get((revision, variant))
        if counters is None and len(self.accuracy) < MAX_ACCURACY_SERIES:
            counters = self.accuracy[(revision, variant)] = AccuracyCounters()
        return counters

    def _accuracy(self, name: str, doc: str, field: str) -> Metric:
        family = CounterMetricFamily(name, doc, labels=IDENTITY)
        model = self.labels[0]
        for (revision, variant), counters in self.accuracy.items():
            family.add_metric([model, revision, variant], getattr(counters, field).value)
        return family

    def _counter(self, name: str, doc: str, value: float) -> Metric:
        family = CounterMetricFamily(name, doc, labels=IDENTITY)
        family.add_metric(self.labels, value)
        return family

    def _gauge(self, name: str, doc: str, value: float) -> Metric:
        family = GaugeMetricFamily(name, doc, labels=IDENTITY)
        family.add_metric(self.labels, value)
        return family

    def _histogram(self, name: str, doc: str, histogram: FastHistogram) -> Metric:
        family = HistogramMetricFamily(name, doc, labels=IDENTITY)
        family.add_metric(self.labels, histogram.cumulative(), histogram.total)
        return family

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelship_requests",
            "Inference requests by outcome (success, client_error, server_error).",
            labels=[*IDENTITY, "outcome"],
        )
        for outcome, counter in self.requests.items():
            requests.add_metric([*self.labels, outcome], counter.value)
        yield requests
        yield self._histogram(
            "modelship_request_duration_seconds",
            "Time from a received inference request to its encoded answer, failed requests "
            "included.",
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
        shed = CounterMetricFamily(
            "modelship_requests_shed",
            "Inference requests refused with 503 without running, by reason: queue_full "
            "(max in flight reached) or deadline (could not start in time).",
            labels=[*IDENTITY, "reason"],
        )
        for reason, counter in self.shed.items():
            shed.add_metric([*self.labels, reason], counter.value)
        yield shed
        yield self._counter(
            "modelship_requests_abandoned",
            "Inference requests whose client disconnected before the answer; those still "
            "waiting for the model never ran.",
            self.abandoned.value,
        )
        yield self._counter(
            "modelship_model_runs",
            "ONNX Runtime executions (one per batch): requests per run is the batching gain.",
            self.model_runs.value,
        )
        yield self._gauge(
            "modelship_queue_depth",
            "Admitted inference requests waiting for the model, not yet running.",
            self.queue_depth(),
        )
        yield self._gauge(
            "modelship_ready",
            "1 when the model is warmed up and accepting requests.",
            self.ready.value,
        )
        # revision and variant here are those of the pod that made the prediction.
        yield self._accuracy(
            "modelship_feedback_predictions",
            "Predictions that received a label (rows), by the revision and variant that made them.",
            "predictions",
        )
        yield self._accuracy(
            "modelship_feedback_correct",
            "Labelled predictions that matched their label (classification rows).",
            "correct",
        )
        yield self._accuracy(
            "modelship_feedback_absolute_error",
            "Sum of |prediction - label| over labelled regression rows.",
            "abs_error",
        )
        yield self._accuracy(
            "modelship_feedback_squared_error",
            "Sum of (prediction - label)^2 over labelled regression rows.",
            "squared_error",
        )
        yield self._counter(
            "modelship_feedback_unknown_ids",
            "Labels naming a prediction id we do not hold (unseen, expired or labelled already).",
            self.feedback_unknown.value,
        )
        yield self._counter(
            "modelship_feedback_invalid",
            "Labels that do not count: a shape or type not comparable with the prediction, or a "
            "token that is malformed, forged, expired, replayed or of another model.",
            self.feedback_invalid.value,
        )
        yield self._gauge(
            "modelship_feedback_predictions_held",
            "Predictions kept in memory waiting for a label.",
            self.predictions_held.value,
        )
        yield self._gauge(
            "modelship_feedback_predictions_held_bytes",
            "Estimated memory of the predictions kept waiting for a label (bounded by "
            "--feedback-max-bytes).",
            self.predictions_held_bytes.value,
        )
        yield self._counter(
            "modelship_feedback_predictions_evicted",
            "Predictions dropped unlabelled because of retention, the entry or the byte limit.",
            self.predictions_evicted.value,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
