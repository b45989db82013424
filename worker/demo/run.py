"""Orchestration of `sluice demo`: start, submit, wait, summarise, clean up."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from importlib import resources
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from worker.config import get_config
from worker.demo.processes import Children, free_port
from worker.demo.summary import build_summary, print_summary
from worker.embedded import ensure_services
from worker.logs import configure_logging
from worker.migrate import upgrade
from worker.settings import get_settings

logger = logging.getLogger(__name__)

# Bundled file -> workflow configured for it in the default config.
DATASETS = {
    "tickets_bitext.jsonl": "support_tickets",
    "tickets_banking77.jsonl": "banking_tickets",
    "docs_invoices.jsonl": "invoices",
}
SETTLED = {"succeeded", "needs_review", "failed"}


def load_samples(per_dataset: int) -> list[dict[str, Any]]:
    """Read the bundled rows, `per_dataset` from each file (0 = all), in file order."""
    samples = []
    for filename, workflow in DATASETS.items():
        text = resources.files("worker").joinpath(f"demo_data/{filename}").read_text("utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        for row in rows[:per_dataset or None]:
            samples.append({**row, "workflow": workflow, "source": filename.split(".")[0]})
    return samples


def job_request(sample: dict[str, Any]) -> dict[str, Any]:
    """Build the API body: the text only, never the labels."""
    job_input: dict[str, Any] = {"text": sample["text"]}
    if "doc_type" in sample:
        job_input["doc_type"] = sample["doc_type"]
    return {"workflow": sample["workflow"], "input": job_input, "external_id": sample["id"]}


def run_demo(json_output: bool, per_dataset: int, timeout_s: float) -> int:
    """Run the demo; return 0 when every job settled, 1 otherwise."""
    console = Console(stderr=True)
    settings = get_settings()
    log_dir = settings.data_dir.resolve() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    _log_to_file(log_dir / "demo.log", settings.log_level)

    console.print("[bold]Sluice demo[/]: starting services")
    services = ensure_services()
    try:
        upgrade()
        with Children(log_dir) as children:
            simulated = _start_children(children, console)
            api_url = f"http://127.0.0.1:{os.environ['SLUICE_API_PORT']}"
            samples = load_samples(per_dataset)
            job_ids = _submit(api_url, samples, console)
            states = _wait(api_url, job_ids, timeout_s, console)
            summary = build_summary(samples, job_ids, simulated)
    finally:
        services.stop()

    if json_output:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    else:
        print_summary(Console(), summary, log_dir)
    unsettled = [s for s in states.values() if s not in SETTLED]
    return 0 if not unsettled else 1


def _log_to_file(path: Any, level: str) -> None:
    configure_logging(level, json_lines=True)
    handler = logging.getLogger().handlers[0]
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(handler.formatter)
    logging.getLogger().handlers[:] = [file_handler]


def _start_children(children: Children, console: Console) -> bool:
    """Start the simulator (when a route uses it), the API and one worker."""
    simulated = get_config().uses_simulator()
    if simulated:
        port = free_port()
        os.environ["SLUICE_SIMULATOR_URL"] = f"http://127.0.0.1:{port}/v1"
        children.start("simulator", "simulator", "--port", str(port))
        children.wait_http("simulator", f"http://127.0.0.1:{port}/healthz")
        console.print(f"simulator on 127.0.0.1:{port} (rule-based stand-in model)")
    # The demo submits as the default tenant without an API key.
    os.environ.setdefault("SLUICE_INTAKE_AUTH", "off")
    api_port = free_port()
    os.environ["SLUICE_API_PORT"] = str(api_port)
    get_settings.cache_clear()
    children.start("api", "api", "--port", str(api_port))
    children.start("worker", "worker", "--beat")
    children.wait_http("api", f"http://127.0.0.1:{api_port}/readyz")
    console.print(f"API on 127.0.0.1:{api_port}, worker started")
    return simulated


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def _submit(api_url: str, samples: list[dict[str, Any]], console: Console) -> list[uuid.UUID]:
    job_ids = []
    with httpx.Client(base_url=api_url, timeout=30) as client, _progress(console) as progress:
        task = progress.add_task("submitting", total=len(samples))
        for sample in samples:
            response = client.post("/v1/jobs", json=job_request(sample))
            response.raise_for_status()
            job_ids.append(uuid.UUID(response.json()["id"]))
            progress.advance(task)
    return job_ids


def _wait(api_url: str, job_ids: list[uuid.UUID], timeout_s: float,
          console: Console) -> dict[uuid.UUID, str]:
    """Poll every unsettled job until all settle or the timeout passes."""
    states = {job_id: "queued" for job_id in job_ids}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=api_url, timeout=30) as client, _progress(console) as progress:
        task = progress.add_task("processing", total=len(job_ids))
        while time.monotonic() < deadline:
            for job_id in [j for j, s in states.items() if s not in SETTLED]:
                states[job_id] = client.get(f"/v1/jobs/{job_id}").json()["state"]
            settled = sum(1 for s in states.values() if s in SETTLED)
            progress.update(task, completed=settled)
            if settled == len(job_ids):
                break
            time.sleep(0.5)
    return states
