"""Serving benchmark: the HTTP API (jobs/api.py under uvicorn, its own process) under load from
a second process, reading recommendations of users the online store holds.

Needs the local stack (`rtrec local up`, started here if it is not running). It writes lists for
``--users`` users into Redis (keys of this run only), starts the API on a free port, and drives
it from a load process at a fixed request rate (open loop: a request is due at its time whether
or not earlier ones answered, so queueing shows in the latency). Prints throughput and latency
p50/p99 per offered rate. The load process speaks HTTP/1.1 keep-alive over raw asyncio streams:
a full client library would cost more CPU than the server on two cores. Usage:

    .venvs/app/bin/python bench/serving.py [--rates 500,1000,2000,3000] [--seconds 10]
        [--users 10000] [--connections 32] [--env local] [--set key=value ...]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

from cli import config_parser, free_port, wait_healthy

from rtrec.config import load_settings
from rtrec.launch import app_job_command, config_args, start_job
from rtrec.local import up
from rtrec.serving.online_store import RECOMMENDATIONS_GROUP, store_key

KEY = "local-reader-key"


def main() -> None:
    parser = config_parser(__doc__ or "")
    parser.add_argument("--rates", default="500,1000,2000,3000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    overrides = [*args.overrides, f"serving.port={port}"]
    settings = load_settings(args.env, overrides)
    up(settings, report=lambda line: None)
    run = f"bench-serving-{os.getpid()}"
    seed_store(settings.redis.url, run, args.users)
    log = Path(".run/bench") / f"{run}-api.log"
    api = start_job("api", app_job_command(settings, "api", config_args(args.env, overrides)), log)
    try:
        wait_healthy(port)
        print(f"API on :{port}, {args.users:,} users, {args.connections} connections")
        print(f"{'offered/s':>10} {'served/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for rate in (int(r) for r in args.rates.split(",")):
            with multiprocessing.Pool(1) as pool:
                result = pool.apply(
                    drive, (port, run, args.users, rate, args.seconds, args.connections)
                )
            served, latencies, errors = result
            p50 = statistics.median(latencies) * 1000
            p99 = statistics.quantiles(latencies, n=100)[98] * 1000
            print(f"{rate:>10,} {served:>10,.0f} {p50:>8.2f} {p99:>8.2f} {errors:>7}")
    finally:
        api.stop()


def seed_store(url: str, run: str, users: int) -> None:
    """A ten-item list per user, shaped as the scoring job writes it."""
    from redis import Redis

    client = Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for n in range(users):
        record = {
            "user_id": f"{run}-u{n}",
            "rec_id": f"r{n}",
            "event_id": f"e{n}",
            "event_ts": 0,
            "model_version": "1",
            "arm": "champion",
            "computed_at": 0,
            "items": [
                {"item_id": f"i{k}", "score": 1.0 / (k + 1), "source": "cf", "reason": "x"}
                for k in range(10)
            ],
        }
        pipe.set(store_key("user", f"{run}-u{n}", RECOMMENDATIONS_GROUP), json.dumps(record))
    pipe.execute()


def drive(
    port: int, run: str, users: int, rate: int, seconds: float, connections: int
) -> tuple[float, list[float], int]:
    """In the load process: ``rate`` requests/s for ``seconds``, open loop."""
    return asyncio.run(_drive(port, run, users, rate, seconds, connections))


async def _drive(
    port: int, run: str, users: int, rate: int, seconds: float, connections: int
) -> tuple[float, list[float], int]:
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            n, due = await queue.get()
            if n < 0:
                break
            path = f"/v1/users/{run}-u{n % users}/recommendations?k=10"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            # From when the request was due: a late start counts against the server.
            latencies.append(time.perf_counter() - due)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.perf_counter()
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((n, due))
    for _ in workers:
        queue.put_nowait((-1, 0.0))
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    return total / elapsed, latencies, errors


if __name__ == "__main__":
    main()
