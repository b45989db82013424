"""Review actions called directly, where timing matters: claim expiry and races."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from models import Job, JobState, Reviewer, ReviewItem
from models.base import utcnow
from tests.review_support import job_in_review, reviewer, truncate_review_tables
from worker.db import session_scope
from worker.review import service
from worker.review.queries import events


@pytest.fixture
def review_db(clean_db: str) -> Iterator[str]:
    yield clean_db
    truncate_review_tables()


def test_claim_expires_after_ttl(review_db: str) -> None:
    alice, bob = reviewer("alice"), reviewer("bob")
    _job_id, item_id = job_in_review()
    start = utcnow()
    with session_scope() as session:
        service.claim(session, item_id, alice, ttl_s=60, now=start)

    with session_scope() as session, pytest.raises(service.ReviewConflictError,
                                                   match="claimed by alice"):
        service.claim(session, item_id, bob, ttl_s=60, now=start + timedelta(seconds=59))
    with session_scope() as session:
        service.claim(session, item_id, bob, ttl_s=60, now=start + timedelta(seconds=61))
        item = session.get(ReviewItem, item_id)
        assert item is not None
        assert item.claimed_by_id == bob.id
        assert item.claim_expires_at == start + timedelta(seconds=121)


def test_concurrent_claims_one_wins(review_db: str) -> None:
    alice, bob = reviewer("alice"), reviewer("bob")
    _job_id, item_id = job_in_review()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def claim_as(name: str, claimant: Reviewer) -> None:
        barrier.wait()
        try:
            with session_scope() as session:
                service.claim(session, item_id, claimant, ttl_s=600)
            outcomes[name] = "claimed"
        except service.ReviewConflictError:
            outcomes[name] = "conflict"

    threads = [threading.Thread(target=claim_as, args=(name, claimant))
               for name, claimant in (("alice", alice), ("bob", bob))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(outcomes.values()) == ["claimed", "conflict"]
    with session_scope() as session:
        trail = events(session, item_id)
    assert len(trail) == 1
    assert trail[0]["reviewer"] == next(n for n, o in outcomes.items() if o == "claimed")


def test_reject_after_job_left_review(review_db: str) -> None:
    alice = reviewer("alice")
    job_id, item_id = job_in_review()
    with session_scope() as session:
        service.claim(session, item_id, alice, ttl_s=600)
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state = JobState.SUCCEEDED

    with session_scope() as session, pytest.raises(service.ReviewConflictError,
                                                   match="is succeeded, not needs_review"):
        service.reject(session, item_id, alice, "duplicate")
    with session_scope() as session:
        assert [e["action"] for e in events(session, item_id)] == ["claim"]
