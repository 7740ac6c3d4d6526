"""Prometheus metrics, consistent across gunicorn's worker processes.

Delivery counts come from the inbox table itself (the source of truth, shared by every process);
request latency and rejected requests are counted in memory and added to Redis by a Flusher at
most once a second (one round trip for all of them), best effort: a metric is never a reason for
a webhook to fail, and never costs a request a round trip of its own.
"""

from __future__ import annotations

from collections import Counter

from redis.exceptions import RedisError
from sqlalchemy import func, select

from bot.flusher import Flusher
from bot.models import Delivery
from bot.runtime import Runtime

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENCY_KEY = "davinci:metrics:webhook_latency:buckets"
REJECTED_KEY = "davinci:metrics:webhook_rejected"


class Recorder:
    """This process's latency observations and rejections, added to Redis by a Flusher."""

    def __init__(self, runtime: Runtime, every: float = 1.0) -> None:
        self.runtime = runtime
        self.pending: Flusher[tuple[str, str, float]] = Flusher(self._write, every)

    def observe_latency(self, seconds: float) -> None:
        """Counted in its own bucket only; /metrics sums them up."""
        bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
        self.pending.add((LATENCY_KEY, bucket, seconds))

    def count_rejected(self, reason: str) -> None:
        self.pending.add((REJECTED_KEY, reason, 0.0))

    def flush(self) -> None:
        self.pending.flush()

    def _write(self, items: list[tuple[str, str, float]]) -> None:
        """One pipeline: a count per bucket and reason, and the latencies' sum."""
        counts = Counter((key, field) for key, field, _ in items)
        seconds = sum(value for key, _, value in items if key == LATENCY_KEY)
        try:
            pipe = self.runtime.redis.pipeline(transaction=False)
            for (key, field), count in counts.items():
                pipe.hincrby(key, field, count)
            if seconds:
                pipe.hincrbyfloat(LATENCY_KEY, "sum", seconds)
            pipe.execute()
        except RedisError:
            pass  # best effort: these counts are dropped, the webhooks are not


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(runtime: Runtime) -> str:
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
