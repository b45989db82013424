"""Utilisation of a provider's rate limit by several worker processes sharing one Redis.

Usage (Postgres and Redis from SLUICE_DATABASE_URL / SLUICE_REDIS_URL, embedded if unset):

    .venv/bin/python bench/ratelimit_utilisation.py --workers 4 --rpm 600 --tpm 300000

It starts the simulator with the given limits, writes a config whose simulator provider
declares the same limits, starts N worker processes and stores more jobs than the limits
let through in the run (over-demand). After a warm-up, which drains the buckets' initial
burst, it reads the simulator's own counters at the start and end of the measured window
and prints one JSON line: the share of each limit used (accepted / limit over the window)
and the share of requests the simulator answered 429.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import httpx

from worker.config import default_config_path
from worker.db import session_scope
from worker.demo.processes import Children, free_port
from worker.demo.run import load_samples
from worker.embedded import ensure_services
from worker.migrate import upgrade
from worker.pipeline import store
from worker.settings import get_settings
from worker.tasks import enqueue


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="Threads per worker.")
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--tpm", type=int, default=300_000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--warmup-s", type=float, default=70.0)
    parser.add_argument("--window-s", type=float, default=120.0)
    parser.add_argument("--jobs", type=int, default=0,
                        help="Jobs to store; 0 = 1.5 times what the RPM allows in the run.")
    return parser.parse_args()


def write_config(directory: Path, rpm: int, tpm: int) -> Path:
    text = default_config_path().read_text(encoding="utf-8").replace(
        "simulated = true\n",
        f"simulated = true\nlimits = {{ requests_per_minute = {rpm}, "
        f"tokens_per_minute = {tpm} }}\n", 1)
    path = directory / "bench-sluice.toml"
    path.write_text(text, encoding="utf-8")
    return path


def store_and_publish(count: int) -> None:
    samples = [s for s in load_samples(0) if s["workflow"] == "support_tickets"]
    with session_scope() as session:
        job_ids = [
            store.create_job(session, "default", "support_tickets",
                             {"text": samples[i % len(samples)]["text"], "subject": None},
                             None).id
            for i in range(count)
        ]
    for job_id in job_ids:
        enqueue(job_id)


def read_stats(url: str) -> dict[str, object]:
    return dict(httpx.get(f"{url}/_simulator/stats", timeout=10).json())


def window_result(start: dict, end: dict, args: argparse.Namespace) -> dict[str, object]:
    minutes = (float(end["elapsed_s"]) - float(start["elapsed_s"])) / 60
    used = {}
    for limit, setting in (("requests", args.rpm), ("tokens", args.tpm)):
        accepted = end["limits"][limit]["accepted"] - start["limits"][limit]["accepted"]
        used[limit] = {"accepted": accepted, "limit_per_min": setting,
                       "utilisation": round(accepted / (setting * minutes), 4)}
    rejected = sum(end["outcomes"].get(k, 0) - start["outcomes"].get(k, 0)
                   for k in ("rate_limited_requests", "rate_limited_tokens"))
    total = end["requests_total"] - start["requests_total"]
    return {"window_s": round(minutes * 60, 1), "requests": total, "answered_429": rejected,
            "share_429": round(rejected / total, 5) if total else None, **used}


def main() -> None:
    args = parse_args()
    os.environ.setdefault("SLUICE_WORKER_METRICS_PORT", "0")
    services = ensure_services()
    upgrade()
    data_dir = Path(get_settings().data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["SLUICE_CONFIG_FILE"] = str(write_config(data_dir, args.rpm, args.tpm))
    try:
        with Children(data_dir / "bench-logs") as children:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            os.environ["SLUICE_SIMULATOR_URL"] = f"{url}/v1"
            children.start("simulator", "simulator", "--port", str(port), "--rpm",
                           str(args.rpm), "--tpm", str(args.tpm), "--latency-ms",
                           str(args.latency_ms))
            children.wait_http("simulator", f"{url}/healthz")
            for index in range(args.workers):
                children.start(f"worker-{index}", "worker", "--concurrency",
                               str(args.concurrency))
            jobs = args.jobs or int(args.rpm * (args.warmup_s + args.window_s) / 60 * 1.5)
            store_and_publish(jobs)
            time.sleep(args.warmup_s)
            start = read_stats(url)
            time.sleep(args.window_s)
            end = read_stats(url)
    finally:
        services.stop()
    print(json.dumps({"workers": args.workers, "concurrency": args.concurrency,
                      "jobs": jobs, "latency_ms": args.latency_ms,
                      **window_result(start, end, args)}))


if __name__ == "__main__":
    main()
