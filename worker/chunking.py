"""Structure-aware splitting of long documents into chunks that fit a token budget.

The input is text as `pdftotext -layout` writes it: a form feed ends each page, blank
lines separate blocks, and tables are lines whose columns are aligned with spaces.
A document is split at the coarsest boundary that works: pages, then blank-line
blocks inside a page that is too large, then lines inside a block that is too large.
Only a single line that is too large on its own is split inside, at whitespace.

Line numbers count "\\n" only. A form feed is a page break even in the middle of a
line, so the chunks on either side of it share that line number.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

TokenCounter = Callable[[str], int]

# Boundary levels, coarsest first. A whitespace run is a boundary of the level of
# the strongest break it contains.
_PAGE, _BLOCK, _LINE, _WORD = range(4)
_WHITESPACE = re.compile(r"\s+")
_SNIPPET_CHARS = 40


@dataclass(frozen=True, slots=True)
class Chunk:
    """One contiguous piece of a document and the text that follows it.

    `separator` is the whitespace between this chunk and the next one: a page break,
    blank lines, a newline, or for `split_line` chunks the spaces between two words.
    For the last chunk it is the whitespace that ends the document. Joining
    `text + separator` of all chunks in order gives back the document (`reassemble`).
    """

    text: str
    index: int
    start_line: int
    end_line: int
    tokens: int
    split_line: bool = False
    separator: str = ""


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    split_line: bool


def chunk_document(text: str, max_tokens: int, count: TokenCounter) -> list[Chunk]:
    """Split `text` into chunks of at most `max_tokens` tokens, as measured by `count`.

    Adjacent pages, blocks or lines that fit together are packed into one chunk
    greedily. A page, block or line that is too large is split on its own, so its
    pieces are never packed with the neighbouring units. `start_line` and `end_line`
    are 1-based and inclusive.

    Raises:
        ValueError: `max_tokens` is below 1, or a single word of the document counts
            more than `max_tokens` tokens. The message gives the smallest `max_tokens`
            that splits every line of this document.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if not text:
        return []

    # Trailing whitespace, such as the form feed after the last page, goes to the
    # last chunk's separator. A document of only whitespace is kept as one chunk.
    end = len(text.rstrip()) or len(text)
    splitter = _Splitter(text, max_tokens, count)
    tokens = count(text[:end])
    if tokens <= max_tokens:
        pieces = [_Piece(0, end, tokens, split_line=False)]
    else:
        pieces = splitter.split(0, end, _PAGE)
    return splitter.to_chunks(pieces)


def reassemble(chunks: list[Chunk]) -> str:
    """Join chunks and their separators back into the document they came from."""
    return "".join(chunk.text + chunk.separator for chunk in chunks)


class _Splitter:
    """Splitting state for one document: its text, the budget and the counter."""

    def __init__(self, text: str, max_tokens: int, count: TokenCounter) -> None:
        self.text = text
        self.max_tokens = max_tokens
        self.count = count
        self._newlines = [index for index, char in enumerate(text) if char == "\n"]
        self._separator_tokens: dict[str, int] = {}

    def split(self, start: int, end: int, level: int) -> list[_Piece]:
        """Split text[start:end], which is too large, at boundaries of `level` or finer.

        The parts that fit are packed, and each part that does not is split further.
        """
        children = _children(self.text, start, end, level)
        if len(children) == 1 and level != _WORD:
            return self.split(start, end, level + 1)

        pieces: list[_Piece] = []
        fitting: list[_Piece] = []
        for child_start, child_end in children:
            tokens = self.count(self.text[child_start:child_end])
            if tokens <= self.max_tokens:
                fitting.append(_Piece(child_start, child_end, tokens, level == _WORD))
                continue
            if level == _WORD:
                raise self._too_small_error(child_start, child_end, tokens)
            pieces.extend(self._pack(fitting))
            fitting = []
            pieces.extend(self.split(child_start, child_end, level + 1))
        pieces.extend(self._pack(fitting))
        return pieces

    def to_chunks(self, pieces: list[_Piece]) -> list[Chunk]:
        chunks = []
        for index, piece in enumerate(pieces):
            next_start = pieces[index + 1].start if index + 1 < len(pieces) else len(self.text)
            chunks.append(
                Chunk(
                    text=self.text[piece.start : piece.end],
                    index=index,
                    start_line=self._line_of(piece.start),
                    end_line=self._line_of(piece.end - 1),
                    tokens=piece.tokens,
                    split_line=piece.split_line,
                    separator=self.text[piece.end : next_start],
                )
            )
        return chunks

    def _pack(self, run: list[_Piece]) -> list[_Piece]:
        # The sum of the parts' counts decides what to pack, and one exact count of
        # the packed text confirms it, because a tokenizer may count a joined text
        # differently from its parts.
        packed: list[_Piece] = []
        group: list[_Piece] = []
        estimate = 0
        for piece in run:
            if group:
                gap = self._count_separator(self.text[group[-1].end : piece.start])
                if estimate + gap + piece.tokens <= self.max_tokens:
                    group.append(piece)
                    estimate += gap + piece.tokens
                    continue
                packed.extend(self._merge(group))
            group = [piece]
            estimate = piece.tokens
        if group:
            packed.extend(self._merge(group))
        return packed

    def _merge(self, group: list[_Piece]) -> list[_Piece]:
        """Join a group into one piece, or into halves when the joined text is too large."""
        if len(group) == 1:
            return group
        start, end = group[0].start, group[-1].end
        tokens = self.count(self.text[start:end])
        if tokens <= self.max_tokens:
            return [_Piece(start, end, tokens, group[0].split_line)]
        middle = len(group) // 2
        return self._merge(group[:middle]) + self._merge(group[middle:])

    def _count_separator(self, separator: str) -> int:
        tokens = self._separator_tokens.get(separator)
        if tokens is None:
            tokens = self.count(separator)
            self._separator_tokens[separator] = tokens
        return tokens

    def _line_of(self, offset: int) -> int:
        return bisect.bisect_left(self._newlines, offset) + 1

    def _too_small_error(self, start: int, end: int, tokens: int) -> ValueError:
        needed = max(
            self.count(self.text[word_start:word_end])
            for word_start, word_end in _words(self.text, 0, len(self.text), _PAGE)
        )
        snippet = self.text[start:end][:_SNIPPET_CHARS]
        return ValueError(
            f"max_tokens={self.max_tokens} is too small for this document: the word "
            f"{snippet!r} on line {self._line_of(start)} counts {tokens} tokens and cannot "
            f"be split. Use max_tokens >= {needed}, which fits every word of this document."
        )


def _children(text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
    """Return the spans between the `level` boundaries inside text[start:end].

    Whitespace at either edge of the span is not a boundary, so the first and last
    child keep it and the children never start or end outside the span.
    """
    children = []
    child_start = start
    for match in _WHITESPACE.finditer(text, start, end):
        if match.start() == start or match.end() == end:
            continue
        run = match.group()
        if _boundary_level(run) != level:
            continue
        children.append((child_start, match.start()))
        child_start = _separator_end(run, match.start(), level)
    children.append((child_start, end))
    return children


def _boundary_level(run: str) -> int:
    if "\f" in run:
        return _PAGE
    newlines = run.count("\n")
    if newlines >= 2:
        return _BLOCK
    if newlines == 1:
        return _LINE
    return _WORD


def _separator_end(run: str, run_start: int, level: int) -> int:
    """Return where the text after a boundary starts.

    After a page, block or line break, that is the start of the next line, so the
    indentation of an aligned table row stays with the row. Between words, it is
    the next word.
    """
    if level == _WORD:
        return run_start + len(run)
    last_break = max(run.rfind("\n"), run.rfind("\f"))
    return run_start + last_break + 1


def _words(text: str, start: int, end: int, level: int) -> Iterator[tuple[int, int]]:
    """Yield the word spans that splitting text[start:end] down to words would give."""
    for child_start, child_end in _children(text, start, end, level):
        if level == _WORD:
            yield child_start, child_end
        else:
            yield from _words(text, child_start, child_end, level + 1)
