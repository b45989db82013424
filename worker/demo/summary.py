"""The demo's summary: states, accuracy, tokens, cost, latency and review items."""

from __future__ import annotations

import statistics
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from models import Job, LLMCall, ReviewItem
from worker.config import get_config
from worker.db import session_scope
from worker.demo.score import Scores, score_document, score_ticket
from worker.workflows import get_workflow


def percentile(values: list[float], share: float) -> float | None:
    """Return the `share` quantile (0..1) with linear interpolation, or None if empty."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[round(share * 100) - 1]


def build_summary(samples: list[dict[str, Any]], job_ids: list[uuid.UUID],
                  simulated: bool) -> dict[str, Any]:
    with session_scope() as session:
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        calls = list(session.scalars(select(LLMCall).where(LLMCall.job_id.in_(job_ids))))
        reviews = list(session.scalars(select(ReviewItem).where(ReviewItem.job_id.in_(job_ids))))
        scores = _score(session, samples, job_ids, jobs)

    durations = [(j.finished_at - j.created_at).total_seconds() * 1000
                 for j in jobs.values() if j.finished_at is not None]
    call_latencies = [float(c.latency_ms) for c in calls if c.error_kind is None]
    cost = sum((c.cost_usd for c in calls), Decimal(0))
    return {
        "jobs": len(job_ids),
        "states": dict(Counter(j.state.value for j in jobs.values())),
        "accuracy_of": "simulator stand-in model" if simulated else "configured provider models",
        "accuracy": scores.as_dict(),
        "llm_calls": len(calls),
        "llm_calls_by_purpose": dict(Counter(c.purpose for c in calls)),
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": sum(c.completion_tokens for c in calls),
        "cost_usd": str(cost),
        "job_latency_ms": {"p50": percentile(durations, 0.5), "p95": percentile(durations, 0.95)},
        "llm_latency_ms": {"p50": percentile(call_latencies, 0.5),
                           "p95": percentile(call_latencies, 0.95)},
        "review_items": len(reviews),
        "review_reasons": dict(Counter(r.reason for r in reviews)),
    }


def _score(session: Any, samples: list[dict[str, Any]], job_ids: list[uuid.UUID],
           jobs: dict[uuid.UUID, Job]) -> Scores:
    config = get_config()
    scores = Scores()
    for sample, job_id in zip(samples, job_ids, strict=True):
        job = jobs.get(job_id)
        record = None
        if job is not None and job.state.value == "succeeded":
            record = get_workflow(config, sample["workflow"]).read_record(session, job_id)
        if "fields" in sample:
            score_document(scores, sample["fields"], record)
        else:
            score_ticket(scores, sample["source"], sample["labels"], record)
    return scores


def print_summary(console: Console, summary: dict[str, Any], log_dir: Path) -> None:
    table = Table(title="Sluice demo summary", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("jobs", str(summary["jobs"]))
    for state, count in sorted(summary["states"].items()):
        table.add_row(f"  {state}", str(count))
    table.add_row("LLM calls", str(summary["llm_calls"]))
    table.add_row("tokens (prompt / completion)",
                  f"{summary['prompt_tokens']} / {summary['completion_tokens']}")
    table.add_row("cost (USD, simulated prices)" if "stand-in" in summary["accuracy_of"]
                  else "cost (USD)", summary["cost_usd"])
    for name in ("job_latency_ms", "llm_latency_ms"):
        p50, p95 = summary[name]["p50"], summary[name]["p95"]
        table.add_row(f"{name.replace('_ms', '')} p50 / p95 (ms)", f"{_ms(p50)} / {_ms(p95)}")
    table.add_row("review items", str(summary["review_items"]))
    for reason, count in sorted(summary["review_reasons"].items()):
        table.add_row(f"  {reason}", str(count))
    console.print(table)

    accuracy = Table(title=f"Accuracy of the {summary['accuracy_of']} against the labels")
    accuracy.add_column("dataset.field")
    accuracy.add_column("correct", justify="right")
    accuracy.add_column("accuracy", justify="right")
    for name, score in summary["accuracy"].items():
        value = score["accuracy"]
        accuracy.add_row(name, f"{score['correct']}/{score['total']}",
                         "-" if value is None else f"{value:.1%}")
    console.print(accuracy)
    console.print(f"Logs: {log_dir}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
