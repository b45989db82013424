from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.chunking import Chunk, chunk_document, reassemble
from worker.tokens import count_text_tokens


def count_words(text: str) -> int:
    """Count whitespace-separated words: additive over whitespace, so packing is exact."""
    return len(text.split())


def count_o200k(text: str) -> int:
    return count_text_tokens(text, "o200k_base")


ITEMS = [
    ("A-10442", "Kugellager 6204-2RS", 40, "3,85"),
    ("A-10517", "Wellendichtring 20x35x7", 80, "0,92"),
    ("B-20031", "Sicherungsring DIN 471 20mm", 200, "0,11"),
    ("C-30990", "Fettpresse 500 g", 2, "24,90"),
    ("C-31004", "Schmierfett Lithium 400 g", 12, "6,40"),
    ("D-40218", "Sechskantschraube M10x60 8.8", 500, "0,19"),
    ("D-40230", "Scheibe 10,5 DIN 125 verzinkt", 500, "0,03"),
    ("E-51177", "Zahnriemen HTD 5M-425 15 mm", 6, "18,75"),
]


def table_rows(first: int, count: int) -> str:
    rows = []
    for number in range(first, first + count):
        code, name, quantity, price = ITEMS[number % len(ITEMS)]
        rows.append(f"  {number:>4}  {code:<10}  {name:<32} {quantity:>5}  {price:>8} €")
    return "\n".join(rows)


PAGE_ONE = f"""\
                                                      RECHNUNG
  Hofmann Antriebstechnik GmbH                        Rechnungsnummer:   RE-2026-004471
  Gewerbering 7                                       Rechnungsdatum:    03.11.2026
  89231 Neu-Ulm                                       Kundennummer:      K-88213

  Lieferanschrift: Werk 2, Tor 4, Rampe B
  Bestellung 4500177321 vom 21.10.2026, Ihr Zeichen: Frau Brandt

  Pos.  Artikelnr.  Bezeichnung                      Menge  Einzelpreis
{table_rows(1, 12)}

                                                                 Seite 1 von 3
"""
PAGE_TWO = f"""\
  Pos.  Artikelnr.  Bezeichnung                      Menge  Einzelpreis
{table_rows(13, 30)}

                                                                 Seite 2 von 3
"""
PAGE_THREE = """\
                                              Nettobetrag          2.194,60 €
                                              USt. 19 %              416,97 €
                                              Rechnungsbetrag      2.611,57 €

  Zahlbar innerhalb von 14 Tagen ohne Abzug. Bei Zahlung bis zum 10.11.2026
  gewähren wir 2 % Skonto.

  Sparkasse Neu-Ulm   IBAN DE12 7305 0000 0012 3456 78   BIC BYLADEM1NUL
                                                                 Seite 3 von 3
"""
INVOICE = PAGE_ONE + "\f" + PAGE_TWO + "\f" + PAGE_THREE + "\f"


def chunk_offsets(chunks: list[Chunk]) -> list[int]:
    offsets = []
    position = 0
    for chunk in chunks:
        offsets.append(position)
        position += len(chunk.text) + len(chunk.separator)
    return offsets


def check_chunks(
    text: str, chunks: list[Chunk], max_tokens: int, count: Callable[[str], int]
) -> None:
    """Check the invariants every result must meet, whatever the splitting level."""
    assert reassemble(chunks) == text
    assert chunks[-1].separator == text[len(text.rstrip()) :] or not text.strip()
    for index, (chunk, offset) in enumerate(zip(chunks, chunk_offsets(chunks), strict=True)):
        assert chunk.index == index
        assert chunk.text, chunk
        assert chunk.tokens == count(chunk.text), chunk
        assert chunk.tokens <= max_tokens, chunk
        assert chunk.start_line == text.count("\n", 0, offset) + 1, chunk
        assert chunk.end_line == text.count("\n", 0, offset + len(chunk.text) - 1) + 1, chunk
        assert chunk.separator.isspace() or chunk.separator == "", chunk
        if chunk.split_line:
            continue
        # Outside split lines, a chunk starts at the start of a line and ends at its end.
        assert offset == 0 or text[offset - 1] in "\n\f", chunk
        is_last = index == len(chunks) - 1
        if not is_last:
            assert "\n" in chunk.separator or "\f" in chunk.separator, chunk


def page_contents() -> list[str]:
    return [page.rstrip("\n") for page in (PAGE_ONE, PAGE_TWO, PAGE_THREE)]


def test_document_that_fits_is_one_chunk() -> None:
    chunks = chunk_document(INVOICE, 10_000, count_o200k)

    assert len(chunks) == 1
    assert chunks[0].text == INVOICE.removesuffix("\n\f")
    assert chunks[0].separator == "\n\f"
    assert chunks[0].start_line == 1
    assert chunks[0].end_line == INVOICE.count("\n")
    assert chunks[0].tokens == count_o200k(chunks[0].text)
    assert not chunks[0].split_line


def test_empty_text_has_no_chunks() -> None:
    assert chunk_document("", 100, count_o200k) == []


def test_pages_become_chunks() -> None:
    pages = page_contents()
    max_tokens = max(count_o200k(page) for page in pages)
    assert count_o200k(pages[0] + "\n\f" + pages[1]) > max_tokens
    assert count_o200k(pages[1] + "\n\f" + pages[2]) > max_tokens

    chunks = chunk_document(INVOICE, max_tokens, count_o200k)

    assert [chunk.text for chunk in chunks] == pages
    assert [chunk.separator for chunk in chunks] == ["\n\f", "\n\f", "\n\f"]
    # Each page ends with "\n", and its form feed starts the next page's first line.
    page_two_line = PAGE_ONE.count("\n") + 1
    page_three_line = page_two_line + PAGE_TWO.count("\n")
    assert [chunk.start_line for chunk in chunks] == [1, page_two_line, page_three_line]
    assert [chunk.start_line for chunk in chunks] == [1, 24, 57]
    assert [chunk.end_line for chunk in chunks] == [23, 56, 65]
    check_chunks(INVOICE, chunks, max_tokens, count_o200k)


def test_page_break_keeps_row_indentation() -> None:
    chunks = chunk_document(INVOICE, max(count_o200k(page) for page in page_contents()),
                            count_o200k)

    assert chunks[1].text.startswith("  Pos.  Artikelnr.")
    assert chunks[2].text.startswith("                                              Nettobetrag")


def test_small_pages_are_packed() -> None:
    pages = [f"Lieferschein {number}\nPosition {number}: 4 Paletten" for number in range(1, 6)]
    text = "\f".join(pages)
    two_pages = count_words(pages[0] + "\f" + pages[1])

    chunks = chunk_document(text, two_pages, count_words)

    assert [chunk.text for chunk in chunks] == [
        pages[0] + "\f" + pages[1],
        pages[2] + "\f" + pages[3],
        pages[4],
    ]
    assert [chunk.separator for chunk in chunks] == ["\f", "\f", ""]
    check_chunks(text, chunks, two_pages, count_words)


def test_large_page_splits_at_blank_lines() -> None:
    blocks = PAGE_ONE.rstrip("\n").split("\n\n")
    largest_block = max(count_o200k(block) for block in blocks)
    assert largest_block < count_o200k(PAGE_ONE)

    chunks = chunk_document(PAGE_ONE, largest_block, count_o200k)

    assert len(chunks) > 1
    for chunk in chunks[:-1]:
        assert chunk.separator == "\n\n", chunk
    assert all(chunk.text.strip() for chunk in chunks)
    check_chunks(PAGE_ONE, chunks, largest_block, count_o200k)


def test_blocks_of_a_page_are_packed() -> None:
    blocks = PAGE_ONE.rstrip("\n").split("\n\n")
    header_and_delivery = count_o200k(blocks[0] + "\n\n" + blocks[1])
    max_tokens = max(header_and_delivery, count_o200k(blocks[2]))
    assert count_o200k(blocks[0] + "\n\n" + blocks[1] + "\n\n" + blocks[2]) > max_tokens

    chunks = chunk_document(PAGE_ONE, max_tokens, count_o200k)

    assert chunks[0].text == blocks[0] + "\n\n" + blocks[1]
    assert chunks[1].text == blocks[2]
    check_chunks(PAGE_ONE, chunks, max_tokens, count_o200k)


def test_large_block_splits_at_lines() -> None:
    table = table_rows(1, 40)
    lines = table.split("\n")
    max_tokens = 5 * max(count_words(line) for line in lines)

    chunks = chunk_document(table, max_tokens, count_words)

    assert len(chunks) > 1
    for chunk in chunks:
        assert not chunk.split_line
        assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line]), chunk
    for chunk in chunks[:-1]:
        assert chunk.separator == "\n", chunk
    check_chunks(table, chunks, max_tokens, count_words)


def test_lines_are_packed_greedily() -> None:
    lines = [f"Zeile {number} hat vier" for number in range(1, 11)]  # 4 words each
    text = "\n".join(lines)

    chunks = chunk_document(text, 13, count_words)

    assert [chunk.text for chunk in chunks] == [
        "\n".join(lines[0:3]),
        "\n".join(lines[3:6]),
        "\n".join(lines[6:9]),
        lines[9],
    ]
    assert [(chunk.start_line, chunk.end_line) for chunk in chunks] == [
        (1, 3), (4, 6), (7, 9), (10, 10)
    ]
    assert [chunk.tokens for chunk in chunks] == [12, 12, 12, 4]


def test_large_page_does_not_pack_with_neighbours() -> None:
    small = "Anlage A\nLieferbedingungen"
    large = "\n".join(f"Position {number} Stahlblech geschnitten" for number in range(1, 9))
    text = small + "\f" + large + "\f" + small

    chunks = chunk_document(text, 12, count_words)

    assert chunks[0].text == small
    assert chunks[-1].text == small
    assert chunks[0].separator == "\f"
    assert chunks[-2].separator == "\f"
    check_chunks(text, chunks, 12, count_words)


def test_long_line_splits_at_whitespace() -> None:
    long_line = " ".join(f"Teil{number:03d}" for number in range(1, 121))
    text = "Stückliste\n\n" + long_line + "\n\nEnde der Liste"

    chunks = chunk_document(text, 50, count_words)

    split = [chunk for chunk in chunks if chunk.split_line]
    assert [chunk.text for chunk in split] == [
        " ".join(f"Teil{number:03d}" for number in range(first, min(first + 50, 121)))
        for first in (1, 51, 101)
    ]
    assert all(chunk.start_line == chunk.end_line == 3 for chunk in split)
    assert [chunk.separator for chunk in split] == [" ", " ", "\n\n"]
    assert not chunks[0].split_line
    assert not chunks[-1].split_line
    check_chunks(text, chunks, 50, count_words)


def test_long_line_keeps_words_whole() -> None:
    line = "Lieferung " * 300 + "Ende"

    chunks = chunk_document(line, 40, count_o200k)

    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.split_line
        assert set(chunk.text.split()) <= {"Lieferung", "Ende"}, chunk
    check_chunks(line, chunks, 40, count_o200k)


def test_form_feed_inside_line_is_page_break() -> None:
    text = "Seite eins endet hier\fSeite zwei beginnt"

    chunks = chunk_document(text, 4, count_words)

    assert [chunk.text for chunk in chunks] == ["Seite eins endet hier", "Seite zwei beginnt"]
    assert [chunk.start_line for chunk in chunks] == [1, 1]
    assert not any(chunk.split_line for chunk in chunks)


def test_leading_and_trailing_blank_lines_stay() -> None:
    text = "\n\n   \nRechnung\n\nBetrag 12,00\n\n\n"

    chunks = chunk_document(text, 1, count_words)

    assert [chunk.text for chunk in chunks] == ["\n\n   \nRechnung", "Betrag", "12,00"]
    assert [chunk.separator for chunk in chunks] == ["\n\n", " ", "\n\n\n"]
    assert [chunk.start_line for chunk in chunks] == [1, 6, 6]
    check_chunks(text, chunks, 1, count_words)


def test_max_tokens_below_word_raises() -> None:
    text = PAGE_THREE
    needed = max(count_o200k(word) for word in text.split())

    with pytest.raises(ValueError, match=r"max_tokens=1 is too small") as raised:
        chunk_document(text, 1, count_o200k)

    assert f"Use max_tokens >= {needed}," in str(raised.value)
    assert "on line 1" in str(raised.value)
    check_chunks(text, chunk_document(text, needed, count_o200k), needed, count_o200k)


@pytest.mark.parametrize("max_tokens", [0, -5])
def test_max_tokens_below_one_raises(max_tokens: int) -> None:
    with pytest.raises(ValueError, match=rf"max_tokens must be at least 1, got {max_tokens}"):
        chunk_document("Rechnung", max_tokens, count_words)


@pytest.mark.parametrize("max_tokens", [30, 60, 150, 400])
def test_invoice_fits_real_tokenizer(max_tokens: int) -> None:
    chunks = chunk_document(INVOICE, max_tokens, count_o200k)

    check_chunks(INVOICE, chunks, max_tokens, count_o200k)


WORDS = ["Netto", "Łódź", "12,50", "€", "DE12", "Rechnungsbetrag"]
SEPARATORS = [" ", "   ", "\t", "\n", "\n\n", "\n   \n", "\f", "\n\f", "\r\n", "   \n  "]


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["", "\n", "  ", "\f"]),
    parts=st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=60),
    max_tokens=st.integers(min_value=1, max_value=12),
    use_tokenizer=st.booleans(),
)
def test_chunks_reassemble_exactly(
    prefix: str, parts: list[tuple[str, str]], max_tokens: int, use_tokenizer: bool
) -> None:
    text = prefix + "".join(word + separator for word, separator in parts)
    count = count_o200k if use_tokenizer else count_words

    try:
        chunks = chunk_document(text, max_tokens, count)
    except ValueError as error:
        # The message names a budget that is enough, so chunking with it succeeds.
        needed = re.search(r"max_tokens >= (\d+)", str(error))
        assert needed is not None, error
        max_tokens = int(needed.group(1))
        chunks = chunk_document(text, max_tokens, count)

    if not text:
        assert chunks == []
        return
    check_chunks(text, chunks, max_tokens, count)
