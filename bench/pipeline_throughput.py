"""Pipeline throughput against the simulator, for one worker pool configuration.

Usage (Postgres and Redis from SLUICE_DATABASE_URL / SLUICE_REDIS_URL, embedded if unset):

    .venv/bin/python bench/pipeline_throughput.py --jobs 400 --pool threads --concurrency 16
    .venv/bin/python bench/pipeline_throughput.py --jobs 400 --pool prefork --concurrency 2

It starts the simulator and one worker as child processes, stores the jobs and publishes
them (bypassing the HTTP API, which is measured separately), and waits until every job
settles. It prints one JSON line: jobs per second from first publish to last job settled,
and per-job time inside the worker minus the provider's latency (pipeline overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from models import Job, JobState, LLMCall
from worker.db import session_scope
from worker.demo.processes import Children, free_port
from worker.demo.run import load_samples
from worker.embedded import ensure_services
from worker.migrate import upgrade
from worker.pipeline import store
from worker.settings import get_settings
from worker.tasks import enqueue

SETTLED = (JobState.SUCCEEDED, JobState.NEEDS_REVIEW, JobState.FAILED)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="Delay the simulator adds to every answer.")
    return parser.parse_args()


def store_jobs(count: int) -> list[uuid.UUID]:
    samples = [s for s in load_samples(0) if s["workflow"] == "support_tickets"]
    job_ids = []
    with session_scope() as session:
        for index in range(count):
            sample = samples[index % len(samples)]
            job = store.create_job(session, "default", "support_tickets",
                                   {"text": sample["text"], "subject": None}, None)
            job_ids.append(job.id)
    return job_ids


def wait_settled(job_ids: list[uuid.UUID], timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            left = session.scalar(select(func.count()).select_from(Job).where(
                Job.id.in_(job_ids), Job.state.not_in(SETTLED)))
        if left == 0:
            return
        time.sleep(0.05)
    raise TimeoutError(f"jobs did not settle within {timeout_s} s")


def overheads_ms(job_ids: list[uuid.UUID]) -> list[float]:
    """Per job: time from claim to finish minus the time spent inside provider calls."""
    with session_scope() as session:
        provider_ms = dict(session.execute(
            select(LLMCall.job_id, func.sum(LLMCall.latency_ms))
            .where(LLMCall.job_id.in_(job_ids)).group_by(LLMCall.job_id)).all())
        spans = session.execute(
            select(Job.id, Job.started_at, Job.finished_at).where(Job.id.in_(job_ids))).all()
    return [
        (finished - started).total_seconds() * 1000 - float(provider_ms.get(job_id, 0))
        for job_id, started, finished in spans
        if started is not None and finished is not None
    ]


def main() -> None:
    args = parse_args()
    os.environ.setdefault("SLUICE_WORKER_METRICS_PORT", "0")
    services = ensure_services()
    upgrade()
    log_dir = Path(get_settings().data_dir).resolve() / "bench-logs"
    try:
        with Children(log_dir) as children:
            port = free_port()
            os.environ["SLUICE_SIMULATOR_URL"] = f"http://127.0.0.1:{port}/v1"
            children.start("simulator", "simulator", "--port", str(port),
                           "--latency-ms", str(args.latency_ms))
            children.wait_http("simulator", f"http://127.0.0.1:{port}/healthz")
            children.start("worker", "worker", "--pool", args.pool,
                           "--concurrency", str(args.concurrency))
            time.sleep(3)  # let the worker connect before the clock starts

            job_ids = store_jobs(args.jobs)
            started = time.perf_counter()
            for job_id in job_ids:
                enqueue(job_id)
            wait_settled(job_ids)
            elapsed = time.perf_counter() - started
        overhead = sorted(overheads_ms(job_ids))
    finally:
        services.stop()

    cuts = statistics.quantiles(overhead, n=100, method="inclusive")
    print(json.dumps({
        "jobs": args.jobs, "pool": args.pool, "concurrency": args.concurrency,
        "provider_latency_ms": args.latency_ms, "elapsed_s": round(elapsed, 2),
        "jobs_per_s": round(args.jobs / elapsed, 1),
        "overhead_ms": {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1)},
        "python": sys.version.split()[0], "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
