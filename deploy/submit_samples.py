"""Submit part of the bundled sample data to a running intake API and wait for the jobs.

The `demo-data` service of docker-compose.yml runs it. It works against any Sluice API
whose config has the workflows of the bundled default config:

    python deploy/submit_samples.py --api-url http://127.0.0.1:8000 --per-dataset 20

Exit status: 0 when every job settled, 1 when some were still unsettled at the timeout,
2 when the API rejected a submission or could not be reached.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections import Counter

import httpx

from worker.demo.run import SETTLED, job_request, load_samples

logger = logging.getLogger("submit_samples")

DESCRIPTION = "Submit part of the bundled sample data to a Sluice API and wait for the jobs."
POLL_INTERVAL_S = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--api-url", default="http://127.0.0.1:8000",
                        help="Base URL of the intake API.")
    parser.add_argument("--per-dataset", type=int, default=20,
                        help="Rows taken from each bundled dataset (0 = all).")
    parser.add_argument("--timeout-s", type=float, default=600,
                        help="Seconds to wait for every job to settle (0: submit without waiting).")
    args = parser.parse_args(argv)
    if args.per_dataset < 0:
        parser.error(f"--per-dataset must be 0 or more, got {args.per_dataset}")
    if args.timeout_s < 0:
        parser.error(f"--timeout-s must be 0 or more, got {args.timeout_s}")
    return args


def submit(client: httpx.Client, per_dataset: int) -> list[uuid.UUID]:
    """Post one job per sample row. Raise httpx.HTTPStatusError on the first rejection."""
    job_ids = []
    for sample in load_samples(per_dataset):
        response = client.post("/v1/jobs", json=job_request(sample))
        response.raise_for_status()
        job_ids.append(uuid.UUID(response.json()["id"]))
    return job_ids


def wait_for_jobs(client: httpx.Client, job_ids: list[uuid.UUID],
                  timeout_s: float) -> Counter[str]:
    """Poll unsettled jobs until all settle or the timeout passes. Return jobs per state."""
    states = {job_id: "queued" for job_id in job_ids}
    deadline = time.monotonic() + timeout_s
    while True:
        for job_id in [j for j, state in states.items() if state not in SETTLED]:
            response = client.get(f"/v1/jobs/{job_id}")
            response.raise_for_status()
            states[job_id] = response.json()["state"]
        if all(state in SETTLED for state in states.values()) or time.monotonic() > deadline:
            return Counter(states.values())
        time.sleep(POLL_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # httpx logs every request at INFO, and one line per job would drown the summary.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    with httpx.Client(base_url=args.api_url, timeout=30) as client:
        try:
            job_ids = submit(client, args.per_dataset)
            logger.info("submitted %d jobs to %s", len(job_ids), args.api_url)
            if args.timeout_s == 0:
                return 0
            counts = wait_for_jobs(client, job_ids, args.timeout_s)
        except httpx.HTTPStatusError as exc:
            logger.error("the API rejected %s %s with HTTP %d: %s", exc.request.method,
                         exc.request.url, exc.response.status_code, exc.response.text)
            return 2
        except httpx.TransportError as exc:
            logger.error("failed to reach the API at %s: %s. Check that it runs and the URL "
                         "is right.", args.api_url, exc)
            return 2
    summary = ", ".join(f"{state}: {count}" for state, count in sorted(counts.items()))
    unsettled = sum(count for state, count in counts.items() if state not in SETTLED)
    if unsettled:
        logger.error("%d of %d jobs had not settled after %.0f s (%s)", unsettled,
                     len(job_ids), args.timeout_s, summary)
        return 1
    logger.info("all %d jobs settled (%s)", len(job_ids), summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
