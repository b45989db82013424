"""Rule-based stand-in model that generates the provider simulator's responses.

The stand-in reads only the chat request: the label lists in the system message and the
ticket or document text in the user message. It never sees expected outputs, so its scores
on labelled data are a fair baseline for what the rest of Sluice must cope with. Every
function here is pure and deterministic: the same request always gets the same output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from worker.simulator.standin.documents import detect_currency, extract_document
from worker.simulator.standin.requests import (
    TICKET_CLASSIFICATION,
    PromptError,
    detect_workflow,
    estimate_prompt_tokens,
    estimate_text_tokens,
    message_text,
    parse_label_line,
    tagged_user_text,
)
from worker.simulator.standin.tickets import (
    best_label,
    classify_ticket,
    detect_language,
    detect_priority,
    free_text_intent,
    stem,
    summarize,
    ticket_terms,
)


def generate_output(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Read a chat request and return the stand-in's output object for its workflow.

    A repair turn (an assistant message and a user message listing errors) gets the same
    output as the first turn, because only the first tagged user text is read.
    Raises PromptError when the request lacks a part of the prompt contract.
    """
    system_text = "\n".join(
        message_text(message) for message in messages if message.get("role") == "system"
    )
    workflow = detect_workflow(system_text, response_format)
    if workflow == TICKET_CLASSIFICATION:
        categories = parse_label_line(system_text, "Allowed categories")
        if not categories:
            raise PromptError(
                "missing category list: add a line 'Allowed categories: A, B, C' to the "
                "system message of a ticket_classification request"
            )
        intents = parse_label_line(system_text, "Allowed intents")
        text = tagged_user_text(messages, "ticket")
        return classify_ticket(text, categories, intents or None)
    return extract_document(tagged_user_text(messages, "document"))


__all__ = [
    "PromptError",
    "best_label",
    "classify_ticket",
    "detect_currency",
    "detect_language",
    "detect_priority",
    "detect_workflow",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "extract_document",
    "free_text_intent",
    "generate_output",
    "message_text",
    "parse_label_line",
    "stem",
    "summarize",
    "tagged_user_text",
    "ticket_terms",
]
