"""Workflow kinds and the lookup from a configured workflow name to its implementation."""

from __future__ import annotations

from worker.config import SluiceConfig
from worker.errors import UnknownWorkflowError
from worker.workflows.base import Workflow
from worker.workflows.documents import DocumentExtractionWorkflow
from worker.workflows.tickets import TicketClassificationWorkflow

KINDS: dict[str, type[Workflow]] = {
    TicketClassificationWorkflow.kind: TicketClassificationWorkflow,
    DocumentExtractionWorkflow.kind: DocumentExtractionWorkflow,
}


def get_workflow(config: SluiceConfig, name: str) -> Workflow:
    """Return the workflow configured under `name`, or raise UnknownWorkflowError."""
    workflow_config = config.workflows.get(name)
    if workflow_config is None:
        raise UnknownWorkflowError(name, list(config.workflows))
    return KINDS[workflow_config.kind](name, workflow_config)


__all__ = ["KINDS", "Workflow", "get_workflow"]
