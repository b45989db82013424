"""The exception family of Sluice. Third-party errors are translated at the adapter that
meets them and chained with `raise ... from`."""

from __future__ import annotations


class SluiceError(Exception):
    """Base of every error Sluice raises on purpose."""


class ConfigError(SluiceError):
    """The settings or the config file are invalid; the message names the key and the fix."""


class JobNotFoundError(SluiceError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class InvalidInputError(SluiceError):
    """A job's input does not fit its workflow; `errors` lists each field and problem."""

    def __init__(self, workflow: str, errors: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(f"input for workflow {workflow!r} is invalid: {detail}")
        self.workflow = workflow
        self.errors = errors


class UnknownWorkflowError(SluiceError):
    def __init__(self, workflow: str, known: list[str]) -> None:
        super().__init__(
            f"workflow {workflow!r} is not configured; use one of: {', '.join(sorted(known))}"
        )
        self.workflow = workflow
        self.known = known


class ProviderError(SluiceError):
    """A provider request failed. `transient` says whether trying again may succeed."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        transient: bool,
        provider: str,
        model: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after_s = retry_after_s
