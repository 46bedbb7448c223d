"""The built-in autoscaler's loop: one task evaluates every ModelDeployment with scaling.targets.

Each model is due every spec.scaling.interval; one scheduler for all of them (like the resync)
keeps memory flat in the number of CRs, and a semaphore bounds how many query Prometheus at
once. What to do is decided by the pure core (modelship.scaling); this module reads Prometheus
and hands a new evaluation to the reconciler, which serves its count and writes status under
the model's lock, so a reconcile and a scale never interleave. An evaluation that changes
nothing worth writing (report.significant) costs no API call: the memory stays here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from modelship import metrics
from modelship.prometheus import PrometheusClient
from modelship.reconcile import Reconciler
from modelship.scaling import Memory, ScalingState, recommend, report

_LOG = logging.getLogger(__name__)

# How often the scheduler looks for due models: the finest spec.scaling.interval is 1s.
TICK_SECONDS = 1.0
# Models evaluated at once; more wait their turn (Prometheus answers in milliseconds).
CONCURRENCY = 8


class Autoscaler:
    """Evaluates due models and remembers each one's Memory between evaluations."""

    def __init__(
        self,
        reconciler: Reconciler,
        prometheus: PrometheusClient,
        scrape_interval_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reconciler = reconciler
        self.prometheus = prometheus
        self.scrape_interval_seconds = scrape_interval_seconds
        self._clock = clock
        self._due: dict[str, float] = {}
        self._memory: dict[str, Memory] = {}
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def run_forever(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(TICK_SECONDS)

    async def tick(self) -> None:
        """Evaluate every model that is due (once each), then forget the models that left."""
        now = self._clock()
        views = self.reconciler.scaling_views()
        due = [uid for uid in views if self._due.get(uid, 0.0) <= now]
        for uid in due:
            self._due[uid] = now + report.interval_seconds(views[uid].md.spec.scaling)
        await asyncio.gather(*(self._guarded(views[uid]) for uid in due))
        for uid in set(self._due) - set(views):
            self._due.pop(uid, None)
            self._memory.pop(uid, None)

    async def _guarded(self, view: report.ScalingView) -> None:
        async with self._slots:
            try:
                await self.evaluate(view)
            except Exception as exc:  # one model's failure must not stop the others
                md = view.md
                _LOG.warning(f"autoscaling of {md.namespace}/{md.name} failed: {exc}")

    async def evaluate(self, view: report.ScalingView) -> None:
        """Read the model's signals, recommend, and have the reconciler serve the outcome."""
        md = view.md
        if not view.revisions:
            return  # nothing serves yet: nothing to measure, nothing to scale
        queries = report.queries_of(md, view.revisions, self.scrape_interval_seconds)
        answers = await self.prometheus.scalars(queries)
        memory = self._memory.get(md.uid)
        if memory is None:
            memory = report.memory_of(view.autoscaling)
        state = ScalingState(
            current_replicas=view.current,
            ready_replicas=view.ready,
            not_ready_replicas=view.not_ready,
            memory=memory,
        )
        now = self._clock()
        rec = recommend(report.params_of(md.spec.scaling), report.readings_of(answers), state, now)
        new = report.outcome(rec, queries, now, view.autoscaling)
        metrics.AUTOSCALER_EVALUATIONS.labels(
            outcome="held" if rec.held_for_missing_data else "evaluated"
        ).inc()
        if report.significant(new, view.autoscaling):
            await self.reconciler.reconcile_owner(md.namespace, md.name, "autoscaler", new)
        self._memory[md.uid] = rec.memory
