"""Extraction from a document too long for every model of the route, chunk by chunk.

The document is split at its own structure (pages, blank-line blocks, lines; see
`worker.chunking`) into pieces that fit the largest model of the route. Each piece is
extracted on its own, the workflow merges the partial outputs, and the merged output is
validated like any other, so a chunked job ends as a valid record or a review item.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from worker import tokens
from worker.chunking import chunk_document
from worker.config import Target
from worker.pipeline import decide
from worker.pipeline.context import Outcome
from worker.workflows.validation import parse_json

if TYPE_CHECKING:
    from worker.pipeline.run import Attempt

logger = logging.getLogger(__name__)

# Tokens kept free beside the chunk, the prompt and the output budget, because the
# per-message overhead of chat formats is an estimate.
SAFETY_TOKENS = 32


def largest_step(route: list[list[Target]]) -> int:
    return max(range(len(route)), key=lambda step: route[step][0].model.context_window)


def chunk_budget(attempt: Attempt, target: Target) -> int:
    """Tokens one chunk may have so that prompt, chunk and output fit the context."""
    context = attempt.context
    empty = context.job_input.model_copy(update={"text": ""})
    tokenizer = target.model.tokenizer or tokens.tokenizer_for_model(target.model.name)
    overhead = tokens.count_prompt_tokens(context.workflow.build_messages(empty), tokenizer)
    return (target.model.context_window - target.model.max_output_tokens - overhead
            - SAFETY_TOKENS)


def extract_in_chunks(attempt: Attempt) -> Outcome:
    """Run the chunked path; the caller handles Deferred, Stopped and ProviderError."""
    context = attempt.context
    step = largest_step(context.route)
    target = context.route[step][0]
    tokenizer = target.model.tokenizer or tokens.tokenizer_for_model(target.model.name)
    text = str(getattr(context.job_input, "text", ""))
    budget = chunk_budget(attempt, target)
    try:
        chunks = chunk_document(text, budget,
                                lambda piece: tokens.count_text_tokens(piece, tokenizer))
    except ValueError as exc:
        return attempt.review(decide.INPUT_TOO_LONG, f"cannot chunk the document: {exc}")
    context.note("chunked", step, target, decide.INPUT_TOO_LONG, chunks=len(chunks),
                 chunk_tokens=budget)
    logger.info("document split into %s chunks", len(chunks), extra={
        "action": "job.chunked", "chunks": len(chunks), **context.log})

    parts = []
    state = decide.StepState(step=step, route_length=len(context.route))
    for chunk in chunks:
        piece = context.job_input.model_copy(update={"text": chunk.text})
        messages = context.workflow.build_messages(piece)
        call = attempt.caller.call(context, state, messages, "chunk")
        data, issues = parse_json(call.completion.content or "")
        attempt.store_call(call, step, "chunk", issues)
        parts.append(data if isinstance(data, dict) else {})

    merged = context.workflow.merge_chunk_outputs(parts)
    result = context.workflow.validate_output(json.dumps(merged, default=_json_value))
    if result.ok:
        attempt.accepted = result.output
        return attempt.record(target)
    attempt.keep_best(json.dumps(merged, default=_json_value), result.issues)
    return attempt.review(result.reason or "invalid_output")


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
