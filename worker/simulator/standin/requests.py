"""Reading the chat request: workflow, label lists, tagged input text and token estimates.

Part of the rule-based stand-in model that generates the provider simulator's responses.

The stand-in reads only the chat request: the label lists in the system message and the
ticket or document text in the user message. It never sees expected outputs, so its scores
on labelled data are a fair baseline for what the rest of Sluice must cope with. Every
function here is pure and deterministic: the same request always gets the same output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TICKET_CLASSIFICATION = "ticket_classification"
DOCUMENT_EXTRACTION = "document_extraction"
WORKFLOW_KINDS = (TICKET_CLASSIFICATION, DOCUMENT_EXTRACTION)

# Written instead of a missing required field. The schema allows no null there, and Sluice's
# validator rejects this value, so the job goes to human review instead of getting a guess.
UNKNOWN = "unknown"

SUMMARY_MAX_CHARS = 200


class PromptError(ValueError):
    """The request does not follow the prompt contract that the stand-in can read."""


def message_text(message: Mapping[str, Any]) -> str:
    """Return a message's content as text, joining the text parts of a multi-part content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, Mapping)]
        return "".join(part for part in parts if isinstance(part, str))
    return ""


def estimate_text_tokens(text: str) -> int:
    """Estimate the tokens of a text as ceil(characters / 4).

    This is the usual rule of thumb for English with OpenAI's tokenizers. It is an estimate,
    not a count: real tokenizers give other numbers, most of all for code and non-Latin text.
    """
    return math.ceil(len(text) / 4)


def estimate_prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Estimate a prompt's tokens: ceil(characters / 4) of each message's content plus 4.

    The 4 per message is an estimate of the role and separator tokens that chat formats add.
    """
    return sum(estimate_text_tokens(message_text(message)) + 4 for message in messages)


def detect_workflow(system_text: str, response_format: Mapping[str, Any] | None) -> str:
    """Return the workflow kind from the json_schema name or else the `Workflow:` line.

    Raises PromptError when neither names a known workflow.
    """
    if response_format and response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema")
        name = schema.get("name") if isinstance(schema, Mapping) else None
        if name in WORKFLOW_KINDS:
            return str(name)
    match = re.search(r"^\s*Workflow:\s*(\S+)\s*$", system_text, re.MULTILINE)
    if match and match.group(1) in WORKFLOW_KINDS:
        return match.group(1)
    raise PromptError(
        "cannot determine the workflow: add the line 'Workflow: ticket_classification' or "
        "'Workflow: document_extraction' to the system message, or send a json_schema "
        "response_format named after the workflow"
    )




def parse_label_line(system_text: str, prefix: str) -> list[str]:
    """Return the comma-separated labels of the line that starts with `prefix:`."""
    match = re.search(rf"^\s*{re.escape(prefix)}:(.*)$", system_text, re.MULTILINE)
    if match is None:
        return []
    return [label.strip() for label in match.group(1).split(",") if label.strip()]


def tagged_user_text(messages: Sequence[Mapping[str, Any]], tag: str) -> str:
    """Return the text between `<tag>` and `</tag>` in the first user message that has both.

    The match is greedy, so a closing tag inside the text does not cut it short.
    """
    pattern = re.compile(rf"<{tag}>(.*)</{tag}>", re.DOTALL)
    for message in messages:
        if message.get("role") != "user":
            continue
        match = pattern.search(message_text(message))
        if match:
            return match.group(1).strip("\n")
    raise PromptError(f"missing input text: put it between <{tag}> and </{tag}> in a user message")
