"""Review pages and commands: reviewers resolve the jobs the machine sent to review.

`worker.review.app.create_review_app` builds the pages, which the intake API mounts
under /review; `worker.cli.review` is the `sluice review` command.
"""
