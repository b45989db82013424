"""The review pages in a real browser: Debian's Chromium driven by Playwright.

CI installs the browser with `apt-get install -y chromium chromium-driver`; Playwright's
own browser download is not used, so the test skips where /usr/bin/chromium is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import DocumentExtraction, Job, JobState, ReviewItem, ReviewState
from tests.review_support import PASSWORD, job_in_review, reviewer, truncate_review_tables
from tests.support import ThreadedServer, use_settings
from worker.api import create_app
from worker.db import session_scope

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing; install it with "
           "apt-get install -y chromium chromium-driver",
)


@pytest.fixture
def api(clean_db: str, clean_redis: str,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedServer]:
    use_settings(monkeypatch, database_url=clean_db, redis_url=clean_redis)
    with ThreadedServer(create_app()) as server:
        yield server
    truncate_review_tables()


@pytest.fixture
def page(api: ThreadedServer, tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        try:
            yield tab
        finally:
            tab.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
            context.close()
            browser.close()


def test_reviewer_corrects_invoice_in_browser(api: ThreadedServer, page: Any) -> None:
    from playwright.sync_api import expect

    reviewer("alice")
    ticket_job, _ = job_in_review("support_tickets")
    invoice_job, item_id = job_in_review("invoices")

    page.goto(f"{api.url}/review/")
    expect(page).to_have_url(f"{api.url}/review/login?next=%2Freview%2F")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Open review items")).to_contain_text("(2)")
    page.get_by_label("Workflow").select_option("invoices")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name=str(invoice_job))).to_be_visible()
    expect(page.get_by_role("link", name=str(ticket_job))).to_have_count(0)

    page.get_by_role("link", name=str(invoice_job)).click()
    expect(page).to_have_url(f"{api.url}/review/items/{item_id}")
    expect(page.locator("#input")).to_contain_text("Invoice INV-7 from Acme GmbH")
    page.get_by_role("button", name="Claim").click()
    expect(page.get_by_role("status")).to_contain_text("Claimed")

    page.get_by_label("Issue date").fill("2024-01-05")
    page.get_by_label("Currency").fill("EURO")
    page.get_by_role("button", name="Approve correction").click()

    currency_error = page.locator('.error[data-field="currency"]')
    expect(currency_error).to_contain_text("at most 3 characters")
    expect(page.get_by_label("Issue date")).to_have_value("2024-01-05")
    assert _job_state(invoice_job) == JobState.NEEDS_REVIEW

    page.get_by_label("Currency").fill("EUR")
    page.get_by_role("button", name="Approve correction").click()

    expect(page.get_by_role("status")).to_contain_text("Approved")
    expect(page.locator("#resolution")).to_contain_text("approved")
    assert _job_state(invoice_job) == JobState.SUCCEEDED
    with session_scope() as session:
        record = session.get(DocumentExtraction, invoice_job)
        assert record is not None
        assert record.currency == "EUR"
        assert str(record.issue_date) == "2024-01-05"
        item = session.scalars(select(ReviewItem).where(ReviewItem.id == item_id)).one()
        assert item.state == ReviewState.APPROVED


def _job_state(job_id: uuid.UUID) -> JobState:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.state
