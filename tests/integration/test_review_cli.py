"""`sluice review` commands against the real database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from models import Job, JobState, Reviewer, ReviewItem, ReviewState
from tests.review_support import (
    BAD_TICKET,
    TICKET,
    job_in_review,
    reviewer,
    truncate_review_tables,
)
from worker.cli import app
from worker.db import session_scope
from worker.review.accounts import AccountError, authenticate
from worker.review.service import ReviewConflictError

runner = CliRunner()


@pytest.fixture
def review_db(clean_db: str) -> Iterator[str]:
    yield clean_db
    truncate_review_tables()


def item_row(item_id: uuid.UUID) -> ReviewItem:
    with session_scope() as session:
        item = session.get(ReviewItem, item_id)
        assert item is not None
        return item


def test_add_reviewer_prompts_twice(review_db: str) -> None:
    result = runner.invoke(app, ["review", "add-reviewer", "carol"],
                           input="long enough pw\nlong enough pw\n")

    assert result.exit_code == 0, result.output
    assert "reviewer carol added" in result.output
    with session_scope() as session:
        assert authenticate(session, "carol", "long enough pw") is not None
        stored = session.scalar(select(Reviewer.password_hash)
                                .where(Reviewer.username == "carol"))
    assert stored is not None and stored.startswith("$argon2id$")


def test_add_reviewer_reads_password_stdin(review_db: str) -> None:
    result = runner.invoke(app, ["review", "add-reviewer", "dave", "--password-stdin"],
                           input="from a password manager\n")

    assert result.exit_code == 0, result.output
    with session_scope() as session:
        assert authenticate(session, "dave", "from a password manager") is not None


def test_add_reviewer_rejects_bad_input(review_db: str) -> None:
    short = runner.invoke(app, ["review", "add-reviewer", "erin", "--password-stdin"],
                          input="short\n")
    assert isinstance(short.exception, AccountError)
    assert "at least 10" in str(short.exception)

    reviewer("erin")
    again = runner.invoke(app, ["review", "add-reviewer", "erin", "--password-stdin"],
                          input="another long password\n")
    assert isinstance(again.exception, AccountError)
    assert "already exists" in str(again.exception)


def test_disable_reviewer_blocks_login(review_db: str) -> None:
    reviewer("frank")
    result = runner.invoke(app, ["review", "disable-reviewer", "frank"])

    assert result.exit_code == 0, result.output
    with session_scope() as session:
        assert authenticate(session, "frank", "correct horse battery") is None
    runner.invoke(app, ["review", "disable-reviewer", "frank", "--enable"])
    with session_scope() as session:
        assert authenticate(session, "frank", "correct horse battery") is not None


def test_list_and_show(review_db: str) -> None:
    job_id, item_id = job_in_review()

    listed = runner.invoke(app, ["review", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.output.splitlines()]
    assert row["item_id"] == str(item_id)
    assert row["reason"] == "rule_violation"

    table = runner.invoke(app, ["review", "list", "--workflow", "invoices"])
    assert "Open review items: 0" in table.output

    shown = runner.invoke(app, ["review", "show", str(job_id)])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["item_id"] == str(item_id)
    assert json.loads(detail["raw_output"]) == BAD_TICKET
    assert detail["attempts"][0]["calls"][0]["model"] == "sim-small"


def test_resolve_approve_then_export(review_db: str, tmp_path: Path) -> None:
    reviewer("grace")
    job_id, item_id = job_in_review()
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({**TICKET, "priority": 5}))
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps(TICKET))

    invalid_result = runner.invoke(app, ["review", "resolve", str(item_id), "--reviewer", "grace",
                                  "--approve", str(invalid)])
    assert invalid_result.exit_code == 1
    assert "priority" in invalid_result.output
    assert item_row(item_id).claim_expires_at is None

    approved = runner.invoke(app, ["review", "resolve", str(item_id), "--reviewer", "grace",
                                   "--approve", str(valid)])
    assert approved.exit_code == 0, approved.output
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.state == JobState.SUCCEEDED

    out = tmp_path / "cases.jsonl"
    exported = runner.invoke(app, ["review", "export", str(out)])
    assert exported.exit_code == 0, exported.output
    [case] = [json.loads(line) for line in out.read_text().splitlines()]
    assert case == {"workflow": "support_tickets",
                    "input": {"text": "Please cancel my order 1234."},
                    "expected": TICKET, "source": "review", "job_id": str(job_id)}


def test_resolve_reject(review_db: str, tmp_path: Path) -> None:
    reviewer("heidi")
    job_id, item_id = job_in_review()

    result = runner.invoke(app, ["review", "resolve", str(item_id), "--reviewer", "heidi",
                                 "--reject", "spam"])

    assert result.exit_code == 0, result.output
    assert item_row(item_id).state == ReviewState.REJECTED
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.state == JobState.FAILED
        assert job.reason == "rejected"
    out = tmp_path / "cases.jsonl"
    runner.invoke(app, ["review", "export", str(out)])
    assert out.read_text() == ""


def test_resolve_respects_other_claim(review_db: str) -> None:
    from worker.review import service

    ivan = reviewer("ivan")
    reviewer("judy")
    _job_id, item_id = job_in_review()
    with session_scope() as session:
        service.claim(session, item_id, ivan, ttl_s=600)

    result = runner.invoke(app, ["review", "resolve", str(item_id), "--reviewer", "judy",
                                 "--reject", "spam"])

    assert isinstance(result.exception, ReviewConflictError)
    assert "claimed by ivan" in str(result.exception)
    assert item_row(item_id).state == ReviewState.OPEN


def test_resolve_needs_exactly_one_action(review_db: str) -> None:
    result = runner.invoke(app, ["review", "resolve", str(uuid.uuid4()), "--reviewer", "x"])
    assert result.exit_code == 2
    assert "exactly one of" in result.output
