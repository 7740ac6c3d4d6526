"""Prometheus metrics, consistent across gunicorn's worker processes.

Delivery counts come from the inbox table itself (the source of truth, shared by every process);
request latency and rejected requests are counted in Redis, best effort: a metric is never a
reason for a webhook to fail.
"""

from __future__ import annotations

import contextlib

from redis.exceptions import RedisError
from sqlalchemy import func, select

from bot.models import Delivery
from bot.runtime import Runtime

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENCY_KEY = "davinci:metrics:webhook_latency:buckets"
REJECTED_KEY = "davinci:metrics:webhook_rejected"


def observe_latency(runtime: Runtime, seconds: float) -> None:
    """Count the request in its own bucket only (one write); /metrics sums them up."""
    bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
    try:
        pipe = runtime.redis.pipeline(transaction=False)
        pipe.hincrby(LATENCY_KEY, bucket, 1)
        pipe.hincrbyfloat(LATENCY_KEY, "sum", seconds)
        pipe.execute()
    except RedisError:
        pass


def count_rejected(runtime: Runtime, reason: str) -> None:
    with contextlib.suppress(RedisError):
        runtime.redis.hincrby(REJECTED_KEY, reason, 1)


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
