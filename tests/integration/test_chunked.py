"""Inputs longer than every model's context: documents are chunked, tickets reviewed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from models import Attempt, DocumentExtraction, Job, JobState, LLMCall
from tests.support import submit, use_settings, write_config
from worker.db import session_scope
from worker.pipeline.run import run_job

SMALL_CONTEXTS = {
    'name = "sim-small"\ntokenizer = "o200k_base"\ncontext_window = 16384\n'
    'max_output_tokens = 1024':
    'name = "sim-small"\ntokenizer = "o200k_base"\ncontext_window = 1200\n'
    'max_output_tokens = 300',
    'name = "sim-large"\ntokenizer = "o200k_base"\ncontext_window = 128000\n'
    'max_output_tokens = 2048':
    'name = "sim-large"\ntokenizer = "o200k_base"\ncontext_window = 1500\n'
    'max_output_tokens = 300',
}
HEADER = """                                   Harbourline Logistics GmbH
                                   Kaistrasse 12, 20457 Hamburg

    Invoice Number: HL-2024-0815
    Invoice Date: 14.03.2024
    Currency: EUR

    Description                                        Qty   Unit price      Amount
"""


def three_page_invoice() -> str:
    rows = [(f"Container handling service batch {i}", 1 + i % 3, 12.5 + i) for i in range(60)]
    lines = [f"    {name:<50} {qty:>3}   {price:>8.2f}   {qty * price:>9.2f}"
             for name, qty, price in rows]
    pages = [HEADER + "\n".join(lines[:20]), "\n".join(lines[20:40]), "\n".join(lines[40:])]
    pages[-1] += ("\n\n    Net amount" + " " * 56 + "5080.00\n    VAT 19%" + " " * 60
                  + "965.20\n    TOTAL EUR" + " " * 56 + "6045.20\n")
    return "\f".join(pages)


@pytest.fixture
def small_models(sluice_env: dict[str, str], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    use_settings(monkeypatch, config_file=write_config(tmp_path, "", SMALL_CONTEXTS))


def test_long_document_is_extracted_in_chunks(small_models: None) -> None:
    job_id = submit("invoices", {"text": three_page_invoice(), "doc_type": "invoice"})

    assert run_job(job_id).state == JobState.SUCCEEDED

    with session_scope() as session:
        record = session.get(DocumentExtraction, job_id)
        assert record is not None
        assert record.issuer == "Harbourline Logistics GmbH"
        assert str(record.issue_date) == "2024-03-14"
        assert str(record.total) == "6045.20"
        assert str(record.tax) == "965.20"
        calls = session.scalars(select(LLMCall).where(LLMCall.job_id == job_id)).all()
        chunk_calls = [c for c in calls if c.purpose == "chunk"]
        assert len(chunk_calls) >= 2
        assert {c.model for c in chunk_calls} == {"sim-large"}
        assert all(c.prompt_tokens + 300 <= 1500 for c in chunk_calls)
        [log] = session.scalars(select(Attempt.route_log).where(Attempt.job_id == job_id))
        chunked = [e for e in log if e["event"] == "chunked"]
        assert chunked[0]["chunks"] == len(chunk_calls)


def test_long_ticket_goes_to_review_without_calls(small_models: None) -> None:
    job_id = submit("support_tickets", {"text": "please cancel my order " * 400})

    assert run_job(job_id).state == JobState.NEEDS_REVIEW

    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.reason == "input_too_long"
        calls = session.scalars(select(LLMCall).where(LLMCall.job_id == job_id)).all()
        assert calls == []
