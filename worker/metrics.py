"""Prometheus metrics of Sluice; docs/metrics.md lists them with their meaning.

Worker-side metrics are recorded where things happen (the pipeline). With a prefork
worker they are written to files under PROMETHEUS_MULTIPROC_DIR, which `sluice worker`
sets before anything imports prometheus_client, and the worker's own HTTP endpoint
aggregates them. API-side gauges are read from Postgres and Redis at scrape time.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
JOB_BUCKETS_S = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600)

INTAKE_REQUESTS = Counter(
    "sluice_intake_requests_total", "Intake requests by HTTP status.", ["status"])
JOBS_FINISHED = Counter(
    "sluice_jobs_finished_total",
    "Attempts that settled a job or gave it back to the queue.", ["workflow", "state"])
JOB_DURATION = Histogram(
    "sluice_job_duration_seconds", "Time from job creation to the attempt that settled it.",
    ["workflow", "state"], buckets=JOB_BUCKETS_S)
LLM_REQUESTS = Counter(
    "sluice_llm_requests_total", "Provider requests by outcome (ok or the error kind).",
    ["provider", "model", "outcome"])
LLM_LATENCY = Histogram(
    "sluice_llm_latency_seconds", "Provider request latency.", ["provider", "model"],
    buckets=LATENCY_BUCKETS_S)
LLM_TOKENS = Counter(
    "sluice_llm_tokens", "Tokens of provider requests by kind: prompt, completion, cached.",
    ["provider", "model", "kind"])
LLM_COST = Counter(
    "sluice_llm_cost_usd", "Priced cost of provider requests in USD.",
    ["provider", "model", "workflow"])
RATELIMIT_WAIT = Histogram(
    "sluice_ratelimit_wait_seconds", "Time calls waited in place for the shared rate limiter.",
    ["provider"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
CALLBACK_FAILURES = Counter(
    "sluice_callback_failures_total",
    "Failed callback delivery attempts by reason: status, timeout, connection, blocked, "
    "redirect.", ["reason"])
CALLBACK_DELIVERIES = Counter(
    "sluice_callback_deliveries_total",
    "Callbacks that reached a final outbox state: delivered or dead.", ["outcome"])

# Gauges the API computes at scrape time (see worker.api.metrics); named here so that
# dashboards and alert rules can be checked against one list.
SCRAPE_TIME_GAUGES = (
    "sluice_jobs",
    "sluice_queue_depth",
    "sluice_review_backlog",
    "sluice_review_oldest_age_seconds",
    "sluice_circuit_open",
)


def exported_metric_names() -> set[str]:
    """Every series name Sluice exports, as PromQL names them (with _total, _bucket, ...)."""
    names = set(SCRAPE_TIME_GAUGES)
    for metric in (INTAKE_REQUESTS, JOBS_FINISHED, LLM_REQUESTS, LLM_TOKENS, LLM_COST,
                   CALLBACK_FAILURES, CALLBACK_DELIVERIES):
        names.add(metric._name + "_total")
    for histogram in (JOB_DURATION, LLM_LATENCY, RATELIMIT_WAIT):
        names.update(histogram._name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names
