"""Prometheus metrics, consistent across gunicorn's worker processes.

Delivery counts come from the inbox table itself (the source of truth, shared by every process);
request latency and rejected requests are counted in memory and added to Redis by a background
thread at most once a second (one round trip for all of them), best effort: a metric is never a
reason for a webhook to fail, and never costs a request a round trip of its own.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import Counter

import structlog
from redis.exceptions import RedisError
from sqlalchemy import func, select

from bot.models import Delivery
from bot.runtime import Runtime

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENCY_KEY = "davinci:metrics:webhook_latency:buckets"
REJECTED_KEY = "davinci:metrics:webhook_rejected"
log = structlog.get_logger()


class Recorder:
    """This process's latency buckets and rejections not yet added to Redis.

    The first observation after a quiet second starts a flusher thread; it adds what was
    counted every ``every`` seconds and ends after a tick with nothing to add, so an idle
    process keeps no thread. Whatever is left is added when the process exits.
    """

    def __init__(self, runtime: Runtime, every: float = 1.0) -> None:
        self.runtime = runtime
        self.every = every
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._buckets: Counter[str] = Counter()
        self._seconds = 0.0
        self._rejected: Counter[str] = Counter()
        self._flusher: threading.Thread | None = None
        self._pid = 0

    def observe_latency(self, seconds: float) -> None:
        """Count the request in its own bucket only; /metrics sums them up."""
        bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
        with self._lock:
            self._buckets[bucket] += 1
            self._seconds += seconds
            self._wake()

    def count_rejected(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1
            self._wake()

    def flush(self) -> None:
        """Add what was counted to Redis in one round trip.

        A second caller waits until the first one's counts are written, so /metrics never
        reads Redis while this process's counts are on their way there.
        """
        self._flush(flusher=False)

    def _flush(self, flusher: bool) -> bool:
        """False when there was nothing to add (and then the calling flusher ends)."""
        with self._writing:
            with self._lock:
                buckets, seconds, rejected = self._buckets, self._seconds, self._rejected
                self._buckets, self._seconds, self._rejected = Counter(), 0.0, Counter()
                if not buckets and not rejected:
                    if flusher:
                        self._flusher = None
                    return False
            try:
                pipe = self.runtime.redis.pipeline(transaction=False)
                for bucket, count in buckets.items():
                    pipe.hincrby(LATENCY_KEY, bucket, count)
                if buckets:
                    pipe.hincrbyfloat(LATENCY_KEY, "sum", seconds)
                for reason, count in rejected.items():
                    pipe.hincrby(REJECTED_KEY, reason, count)
                pipe.execute()
            except RedisError:
                pass  # best effort: these counts are dropped, the webhooks are not
            return True

    def _wake(self) -> None:
        """Start the flusher unless one runs in this process (called with the lock held)."""
        if self._flusher is not None and self._pid == os.getpid():
            return
        if self._pid != os.getpid():
            atexit.register(self.flush)
            self._pid = os.getpid()
        self._flusher = threading.Thread(target=self._run, name="metrics-flusher", daemon=True)
        self._flusher.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            try:
                if not self._flush(flusher=True):
                    return
            except Exception:  # a bug here must not end the counting for good
                log.exception("metrics.flush_failed")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(runtime: Runtime, recorder: Recorder) -> str:
    recorder.flush()  # this process's own counts are in the figures at once
    lines = ["# HELP davinci_webhook_deliveries Deliveries in the inbox by event and outcome.",
             "# TYPE davinci_webhook_deliveries gauge"]
    with runtime.db.session() as session:
        rows = session.execute(select(Delivery.event, Delivery.status, func.count(),
                                      func.coalesce(func.sum(Delivery.attempts), 0))
                               .group_by(Delivery.event, Delivery.status)).all()
    failures = 0
    for event, status, count, attempts in rows:
        lines.append(f'davinci_webhook_deliveries{{event="{_escape(event)}",'
                     f'outcome="{_escape(status)}"}} {count}')
        failures += int(attempts)
    lines += ["# HELP davinci_enqueue_failures_total Enqueue attempts that failed (Redis down).",
              "# TYPE davinci_enqueue_failures_total counter",
              f"davinci_enqueue_failures_total {failures}"]
    try:
        latency = {k.decode(): v.decode() for k, v in runtime.redis.hgetall(LATENCY_KEY).items()}
        rejected = {k.decode(): v.decode() for k, v in runtime.redis.hgetall(REJECTED_KEY).items()}
    except RedisError:
        return "\n".join(lines) + "\n"
    lines += ["# HELP davinci_webhook_request_seconds Time to answer a webhook delivery.",
              "# TYPE davinci_webhook_request_seconds histogram"]
    cumulative = 0
    for bound in LATENCY_BUCKETS:
        cumulative += int(latency.get(str(bound), "0"))
        lines.append(f'davinci_webhook_request_seconds_bucket{{le="{bound}"}} {cumulative}')
    total = cumulative + int(latency.get("+Inf", "0"))
    lines += [f'davinci_webhook_request_seconds_bucket{{le="+Inf"}} {total}',
              f"davinci_webhook_request_seconds_sum {latency.get('sum', '0')}",
              f"davinci_webhook_request_seconds_count {total}",
              "# HELP davinci_webhook_rejected_total Requests refused before the inbox.",
              "# TYPE davinci_webhook_rejected_total counter"]
    for reason, count in sorted(rejected.items()):
        lines.append(f'davinci_webhook_rejected_total{{reason="{_escape(reason)}"}} {count}')
    return "\n".join(lines) + "\n"
