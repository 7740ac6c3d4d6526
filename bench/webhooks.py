"""Signed pull_request deliveries against the app under gunicorn on loopback, next to the
reference endpoint that does only the I/O any durable receiver needs, measured in the same run.

The reference (`io`) verifies the signature, parses the body, inserts one SQLite row and
enqueues one rq job, with no routing, ORM or metrics. A `bare` Flask endpoint that answers 202
shows the ceiling of the measurement itself: what the load generator and gunicorn reach when
the endpoint does nothing. Every request is built and signed before the clock starts and sent
over a raw socket (gunicorn's sync workers close the connection after each answer), from
several processes, so the generator costs little CPU; its CPU time per request is printed.

Prints, per endpoint: requests/s with 8 concurrent senders, p50/p99 latency, p50/p99 at a
steady 100 requests/s (open loop: latency counts from the request's due time), and the work
done (answers by status, inbox rows, jobs queued). Targets: the app at >= 0.8x the reference's
throughput; the app's p99 under 25 ms at 100 requests/s. Traffic stays on 127.0.0.1 and every
loop is bounded.

    python bench/webhooks.py [--requests 1000] [--rounds 5] [--senders 2x4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from redis import Redis  # noqa: E402

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

# The least a durable webhook endpoint must do: verify the signature, parse the body, keep it
# in SQLite (WAL), push one rq job. The app's throughput target is relative to this.
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


@dataclass(frozen=True)
class Endpoint:
    name: str
    target: str
    inbox: tuple[str, str] | None
    """(database file under the data directory, table) holding the received deliveries."""
    queue: str | None
    """The rq queue its jobs go to."""


ENDPOINTS = (Endpoint("bare", "bare:app", None, None),
             Endpoint("io", "io_only:app", ("io.db", "inbox"), "io-bench"),
             Endpoint("app", "bot.app:create_app()", ("davinci.db", "webhook_deliveries"),
                      "davinci-mining"))


@dataclass(frozen=True)
class Run:
    """Latencies (seconds) and statuses of one load phase, with the generator's cost."""

    seconds: float
    latencies: list[float]
    statuses: list[int]
    generator_cpu: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def serve(target: str, env: dict[str, str], cwd: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                "--workers", "2", target], env=env, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    return process, port


def prepare(port: int, numbers: range) -> list[bytes]:
    """Whole HTTP requests, signed, one per PR number (distinct delivery ids and jobs)."""
    requests = []
    for number in numbers:
        body = payloads.encode(payloads.pull_request(number=number))
        headers = payloads.headers("pull_request", body, SECRET, f"bench-{port}-{number}")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        requests.append((f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n{head}\r\n")
                        .encode() + body)
    return requests


def exchange(port: int, request: bytes) -> int:
    """Send one request on a new connection; the answer's status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return int(answer[9:12])


def _sender(port: int, requests: list[bytes], threads: int, go: object, out: object) -> None:
    """One generator process: ``threads`` closed-loop senders over its share of requests."""
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    work = iter(requests)

    def loop() -> None:
        while True:
            with lock:
                request = next(work, None)
            if request is None:
                return
            started = time.perf_counter()
            status = exchange(port, request)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses.append(status)

    go.wait()  # type: ignore[attr-defined]
    cpu, started = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((started, time.perf_counter(), latencies, statuses,  # type: ignore[attr-defined]
             time.process_time() - cpu))


def burst(port: int, requests: list[bytes], processes: int, threads: int) -> Run:
    """All requests as fast as ``processes`` x ``threads`` senders get answers."""
    context = multiprocessing.get_context("fork")
    go, out = context.Event(), context.Queue()
    shares = [requests[i::processes] for i in range(processes)]
    children = [context.Process(target=_sender, args=(port, share, threads, go, out))
                for share in shares]
    for child in children:
        child.start()
    time.sleep(0.2)  # every sender is waiting on `go`
    go.set()
    reports = [out.get(timeout=600) for _ in children]
    for child in children:
        child.join(timeout=30)
    return Run(seconds=max(r[1] for r in reports) - min(r[0] for r in reports),
               latencies=[x for r in reports for x in r[2]],
               statuses=[x for r in reports for x in r[3]],
               generator_cpu=sum(r[4] for r in reports))


def steady(port: int, requests: list[bytes], rate: int, threads: int = 8) -> Run:
    """Open loop at ``rate`` requests/s; a latency counts from the request's due time."""
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    work = iter(enumerate(requests))
    start = time.perf_counter() + 0.05

    def loop() -> None:
        while True:
            with lock:
                item = next(work, None)
            if item is None:
                return
            index, request = item
            due = start + index / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            status = exchange(port, request)
            elapsed = time.perf_counter() - due
            with lock:
                latencies.append(elapsed)
                statuses.append(status)

    cpu = time.process_time()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return Run(seconds=time.perf_counter() - start, latencies=latencies, statuses=statuses,
               generator_cpu=time.process_time() - cpu)


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def work_done(endpoint: Endpoint, data: Path, redis: Redis, runs: list[Run], sent: int) -> str:
    """Answers by status in the measured phases; rows in the inbox and jobs in the queue
    after every phase (warm-up included)."""
    answers: dict[int, int] = {}
    for run in runs:
        for status in run.statuses:
            answers[status] = answers.get(status, 0) + 1
    parts = [" ".join(f"{n}x{s}" for s, n in sorted(answers.items()))]
    if endpoint.inbox is not None:
        with sqlite3.connect(data / endpoint.inbox[0]) as db:
            parts.append(f"{db.execute(f'SELECT count(*) FROM {endpoint.inbox[1]}').fetchone()[0]}"
                         " inbox rows")
    if endpoint.queue is not None:
        parts.append(f"{redis.llen(f'rq:queue:{endpoint.queue}')} jobs queued")
    return ", ".join(parts) + f" of {sent} deliveries sent"


def start(endpoint: Endpoint, env: dict[str, str], scratch: Path,
          ) -> tuple[subprocess.Popen[bytes], int, Path]:
    data = scratch / endpoint.name
    data.mkdir()
    process, port = serve(endpoint.target, {**env, "DAVINCI_DATA_DIR": str(data)}, str(scratch))
    return process, port, data


def rounds(servers: dict[str, tuple[subprocess.Popen[bytes], int, Path]],
           args: argparse.Namespace) -> dict[str, list[Run]]:
    """Bursts of ``args.requests`` new deliveries, the endpoints taking turns in every round,
    so a neighbour's load on the machine falls on all of them alike."""
    processes, threads = (int(n) for n in args.senders.split("x"))
    runs: dict[str, list[Run]] = {name: [] for name in servers}
    for _, port, _ in servers.values():  # warm up
        burst(port, prepare(port, range(10_000_000, 10_000_200)), processes, threads)
    for index in range(args.rounds):
        for name, (_, port, _) in servers.items():
            requests = prepare(port, range(index * args.requests, (index + 1) * args.requests))
            runs[name].append(burst(port, requests, processes, threads))
    return runs


def report(name: str, loads: list[Run], paced: Run, work: str) -> None:
    rates = [run.rate for run in loads]
    latencies = [x for run in loads for x in run.latencies]
    cpu = sum(run.generator_cpu for run in loads) / len(latencies)
    print(f"{name:>4}: {statistics.median(rates):7.0f} req/s (median of {len(rates)} rounds of "
          f"{len(loads[0].latencies)}; {min(rates):.0f}-{max(rates):.0f})  p50 "
          f"{pct(latencies, .5):5.1f} ms  p99 {pct(latencies, .99):5.1f} ms  | at 100 req/s: "
          f"p50 {statistics.median(paced.latencies) * 1000:5.1f} ms  p99 "
          f"{pct(paced.latencies, .99):5.1f} ms")
    print(f"      work: {work}; generator {cpu * 1e6:.0f} us CPU per request", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per burst")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="of steady 100 req/s load")
    parser.add_argument("--senders", default="2x4", help="generator processes x threads")
    args = parser.parse_args()
    redis_server = RedisServer()
    redis_server.start()
    redis = Redis.from_url(redis_server.url)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    servers: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "bare.py").write_text(BARE_APP)
            (Path(scratch) / "io_only.py").write_text(IO_APP)
            env = {**os.environ, "GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": key,
                   "GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_server.url,
                   "DAVINCI_LOG_LEVEL": "warning",
                   "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
            servers = {e.name: start(e, env, Path(scratch)) for e in ENDPOINTS}
            loads = rounds(servers, args)
            paced = {name: steady(port, prepare(port, range(5_000_000,
                                                            5_000_000 + 100 * args.seconds)), 100)
                     for name, (_, port, _) in servers.items()}
            for endpoint in ENDPOINTS:
                runs = [*loads[endpoint.name], paced[endpoint.name]]
                report(endpoint.name, loads[endpoint.name], paced[endpoint.name],
                       work_done(endpoint, servers[endpoint.name][2], redis, runs,
                                 sent=200 + args.rounds * args.requests + 100 * args.seconds))
    finally:
        for process, _, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        redis.close()
        redis_server.cleanup()
    ratios = [app.rate / io.rate for app, io in zip(loads["app"], loads["io"], strict=True)]
    bare = statistics.median(run.rate for run in loads["bare"])
    io = statistics.median(run.rate for run in loads["io"])
    app = statistics.median(run.rate for run in loads["app"])
    print(f"throughput ratio app/io: {statistics.median(ratios):.2f} (median of the rounds' "
          f"ratios {', '.join(f'{r:.2f}' for r in ratios)}; of the median rates "
          f"{app / statistics.median(run.rate for run in loads['io']):.2f}; target >= 0.80); "
          f"app p99 at 100 req/s: {pct(paced['app'].latencies, .99):.1f} ms (target < 25 ms)")
    print(f"ceiling of this measurement (bare endpoint, same generator): {bare:.0f} req/s; the "
          f"reference reaches {io / bare:.2f} of it, so the generator does not limit it")


if __name__ == "__main__":
    main()
