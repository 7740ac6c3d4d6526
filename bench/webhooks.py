"""Signed pull_request deliveries against the app under gunicorn on loopback, next to a bare
Flask endpoint that answers 202, measured in the same run.

Prints requests/s with 8 concurrent senders, p50/p99 latency, and p50/p99 at a steady 100
requests/s, for both, with the ratios; and, for reference, an endpoint that does only the I/O
any durable receiver needs (one SQLite insert, one rq enqueue). Targets: at least 50% of the
bare endpoint's throughput; p99 under 25 ms at 100 requests/s. Traffic stays on 127.0.0.1 and
every loop is bounded.

    python bench/webhooks.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from tests.services import RedisServer, free_port, wait_for_port  # noqa: E402
from tests.webhooks import payloads  # noqa: E402

SECRET = "bench-secret"
BARE_APP = '''
from flask import Flask
app = Flask("bare")

@app.post("/webhooks/github")
def hook():
    return {"status": "accepted"}, 202
'''

# The least a durable webhook endpoint must do, with no routing, ORM or metrics: verify the
# signature, parse the body, keep it in SQLite (WAL), push one rq job. Not a target; it shows
# how much of the gap to the bare endpoint is the I/O itself.
IO_APP = '''
import hashlib, hmac, json, os, sqlite3
from flask import Flask, request
from redis import Redis
from rq import Queue

app = Flask("io")
db = sqlite3.connect(os.path.join(os.environ["DAVINCI_DATA_DIR"], "io.db"),
                     check_same_thread=False, isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, event TEXT, body TEXT)")
queue = Queue("io-bench", connection=Redis.from_url(os.environ["REDIS_URL"]))
secret = os.environ["GITHUB_WEBHOOK_SECRET"].encode()

@app.post("/webhooks/github")
def hook():
    raw = request.get_data()
    good = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, request.headers.get("X-Hub-Signature-256", "")):
        return {"error": "signature"}, 401
    payload = json.loads(raw)
    delivery = request.headers["X-GitHub-Delivery"]
    db.execute("INSERT INTO inbox VALUES (?, ?, ?)",
               (delivery, request.headers["X-GitHub-Event"], raw.decode()))
    job = queue.enqueue("builtins.print", payload["number"], job_id="io-" + delivery)
    return {"status": "enqueued", "jobs": [job.id]}, 202
'''


def serve(target: str, env: dict[str, str], cwd: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                "--workers", "2", target], env=env, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    return process, port


def send(port: int, number: int) -> float:
    payload = payloads.pull_request(number=number)
    body = payloads.encode(payload)
    headers = payloads.headers("pull_request", body, SECRET, f"bench-{port}-{number}")
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/webhooks/github", body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    if answer.status not in (200, 202):
        raise RuntimeError(f"unexpected {answer.status}")
    return time.perf_counter() - started


def burst(port: int, total: int, offset: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    numbers = iter(range(offset, offset + total))

    def worker() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            latency = send(port, number)
            with lock:
                latencies.append(latency)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return total / (time.perf_counter() - started), latencies


def steady(port: int, rate: int, seconds: int, offset: int) -> list[float]:
    latencies = []
    start = time.perf_counter()
    for index in range(rate * seconds):
        due = start + index / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        latencies.append(send(port, offset + index))
    return latencies


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    redis = RedisServer()
    redis.start()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "bare.py").write_text(BARE_APP)
        (Path(scratch) / "io_only.py").write_text(IO_APP)
        env = {**os.environ, "GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": key,
               "GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis.url,
               "DAVINCI_DATA_DIR": scratch, "DAVINCI_LOG_LEVEL": "warning",
               "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        results = {}
        for name, target in (("bare", "bare:app"), ("io", "io_only:app"),
                             ("app", "bot.app:create_app()")):
            process, port = serve(target, env, scratch)
            try:
                burst(port, 100, 10_000_000)  # warm up
                throughput, latencies = burst(port, args.requests, 0)
                calm = steady(port, 100, 5, 5_000_000)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
            results[name] = (throughput, latencies, calm)
            print(f"{name:>4}: {throughput:7.0f} req/s  p50 {pct(latencies, .5):5.1f} ms  "
                  f"p99 {pct(latencies, .99):5.1f} ms  | at 100 req/s: p50 "
                  f"{statistics.median(calm) * 1000:5.1f} ms  p99 {pct(calm, .99):5.1f} ms")
        ratio = results["app"][0] / results["bare"][0]
        print(f"throughput ratio app/bare: {ratio:.2f} (target >= 0.50); "
              f"app p99 at 100 req/s: {pct(results['app'][2], .99):.1f} ms (target < 25 ms)")
        print(f"for reference: io/bare {results['io'][0] / results['bare'][0]:.2f}, "
              f"app/io {results['app'][0] / results['io'][0]:.2f} (io = signature, JSON, one "
              f"SQLite insert and one rq enqueue, nothing else)")
    redis.cleanup()


if __name__ == "__main__":
    main()
