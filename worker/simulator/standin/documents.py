"""Invoice field extraction from `pdftotext -layout` text with patterns and labels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from worker.simulator.standin.requests import UNKNOWN

# pdftotext -layout separates columns with runs of spaces, so 2+ spaces end a cell.
_CELL = re.compile(r"\S+(?: \S+)*")
_LETTERS = re.compile(r"[^\W\d_]{2,}")
_CURRENCY_TOKEN = r"(?:[$€£₹]|zł|Rs\.?|RM|EUR|USD|GBP|PLN|INR|CHF|MYR)"
_TRAILING_CURRENCY = re.compile(rf"(?:\(?{_CURRENCY_TOKEN}\)?[\s:]*)+$")
_LEADING_CURRENCY = re.compile(rf"^\s*{_CURRENCY_TOKEN}")

# A number with optional thousands groups and 1-2 decimals. The look-arounds skip parts of
# dates (07.05.2014, 28/11/2022), times, percentages, identifiers and negative numbers.
_NUMBER = re.compile(r"(?<![\w.,/:\-])(\d{1,3}(?:[.,]\d{3})+|\d+)([.,]\d{1,2})?(?![\w%/]|[.,:]\d)")

_CURRENCY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("EUR", re.compile(r"€|\bEUR\b|\bEuros?\b")),
    ("USD", re.compile(r"\$|\bUSD\b|\bUS Dollars?\b")),
    ("GBP", re.compile(r"£|\bGBP\b")),
    ("PLN", re.compile(r"zł|\bPLN\b")),
    ("INR", re.compile(r"₹|\bINR\b|\bRs\.?(?=\s*\d)")),
    ("CHF", re.compile(r"\bCHF\b")),
    ("MYR", re.compile(r"\bMYR\b|\bRM(?=\s*\d)")),
)

_MONTHS: dict[str, int] = {
    # English, full and abbreviated
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    # Dutch
    "januari": 1, "februari": 2, "maart": 3, "mrt": 3, "mei": 5, "juni": 6, "juli": 7,
    "augustus": 8, "oktober": 10, "okt": 10,
    # German
    "januar": 1, "februar": 2, "märz": 3, "maerz": 3, "mai": 5, "dezember": 12, "dez": 12,
    # French
    "janvier": 1, "février": 2, "fevrier": 2, "mars": 3, "avril": 4, "juin": 6,
    "juillet": 7, "août": 8, "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11,
    "décembre": 12, "decembre": 12,
}  # fmt: skip
_MONTH_ALTERNATION = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_NUMERIC_DATE = re.compile(r"(?<![\d.])(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?!\d)")
_MONTH_FIRST_DATE = re.compile(
    rf"\b({_MONTH_ALTERNATION})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*(\d{{4}})\b",
    re.IGNORECASE,
)
_DAY_FIRST_DATE = re.compile(
    rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?({_MONTH_ALTERNATION})\.?,?\s+(\d{{4}})\b",
    re.IGNORECASE,
)

_ISSUE_DATE_LABEL = re.compile(
    r"invoice\s*date|date\s*of\s*(?:invoice|issue)|issue\s*date|issued|rechnungsdatum|"
    r"ausstellungsdatum|factuurdatum|date\s*de\s*(?:la\s*)?facture|data\s*wystawienia|"
    r"data\s*faktury|fecha\s*de\s*(?:la\s*)?factura|receipt\s*date|bill\s*date",
    re.IGNORECASE,
)
_GENERIC_DATE_LABEL = re.compile(r"\b(?:date|datum|data|fecha|dated)\b", re.IGNORECASE)
# Dates that are not the issue date: due, order, delivery and stay dates.
_OTHER_DATE_LABEL = re.compile(
    r"due|fällig|verval|order|bestell|check|deliver|liefer|ship|period|zahlungsziel|expir|"
    r"valid|payment",
    re.IGNORECASE,
)

# The value after a number label: one token, plus a second one when it contains a digit, as in
# "F 1234K20/1234/12".
_NUMBER_VALUE = r"[\s:#.]*(?P<value>[A-Za-z0-9][\w\-/.]*(?: [\w\-/.]*\d[\w\-/.]*)?)"
_DOCUMENT_NUMBER_LABELS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern + _NUMBER_VALUE, re.IGNORECASE)
    for pattern in (
        r"invoice\s*(?:number|no\.?|nr\.?|num\.?|id|#)",
        r"rechnungs\s*(?:nummer|nr\.?)",
        r"rechnung\s*nr\.?",
        r"factuur\s*(?:nummer|nr\.?)",
        r"facture\s*n[°o]\.?",
        r"num[ée]ro\s*de\s*facture",
        r"faktura\s*(?:nr|numer)\.?",
        r"factura\s*(?:n[°o]|n[úu]mero)\.?",
        r"bill\s*(?:number|no\.?)",
        r"receipt\s*(?:number|no\.?)",
        r"document\s*(?:number|no\.?)",
    )
)
# Weaker labels, trusted only when no invoice-specific label gave a value.
_WEAK_NUMBER_LABELS: tuple[re.Pattern[str], ...] = (
    re.compile(r"booking\s*id", re.IGNORECASE),
    re.compile(r"^(?:no\.|#)", re.IGNORECASE),
)

_TOTAL_LABEL = re.compile(
    r"total|totaal|gesamt|endbetrag|rechnungsbetrag|amount\s*due|balance\s*due|"
    r"amount\s*payable|te\s*betalen|razem|należność|summe|importe",
    re.IGNORECASE,
)
_NOT_TOTAL_LABEL = re.compile(
    r"sub\s*-?\s*total|zwischensumme|\bnet\b|netto|\bexcl|\bexkl|exclusief|ohne|\bhors|"
    r"\bht\b|untaxed|before\s*tax",
    re.IGNORECASE,
)
_TAX_LABEL = re.compile(r"\b(?:vat|tax|mwst|ust|btw|tva|gst|iva|sst|steuer)\b", re.IGNORECASE)
_NOT_TAX_LABEL = re.compile(
    r"\bincl|\binkl|inclusive|including|\bttc\b|\bexcl|\bexkl|exclusief|ohne|\bhors|"
    r"\bid\b|number|\bno\b|\bnr\b|\breg",
    re.IGNORECASE,
)
_ITEM_HEADER = re.compile(
    r"\b(?:description|desc|items?|artikel|beschreibung|bezeichnung|d[ée]signation|"
    r"omschrijving|nazwa|products?|produkt|article|leistung)\b",
    re.IGNORECASE,
)
_CUSTOMER_HEADER = re.compile(
    r"bill(?:ed)?\s*to|ship\s*to|sold\s*to|invoice\s*to|customer|client|nabywca|"
    r"rechnungsempf|lieferadresse|factuuradres|buyer|käufer",
    re.IGNORECASE,
)
_SUFFIX_WORD = (
    r"(?:inc|ltd|llc|plc|gmbh|(?-i:AG)|b\.v|n\.v|s\.a|s\.l|sarl|s\.r\.l|sp\. z o\.o|"
    r"spółka(?: akcyjna)?|limited|corp|corporation|pty|pvt|private|sdn\.? bhd|bhd)\.?"
)
# One legal suffix or a run of them, as in "Pvt. Ltd." or "Pty Ltd".
_COMPANY_SUFFIX = re.compile(
    rf"(?<![\w.]){_SUFFIX_WORD}(?:\s+{_SUFFIX_WORD})*(?!\w)", re.IGNORECASE
)
# Legal footers put the company name on the line above its registered office.
_REGISTERED_OFFICE = re.compile(
    r"si[èe]ge\s*social|registered\s*office|gesch[äa]ftssitz|\bsitz\b|statutaire\s*zetel",
    re.IGNORECASE,
)

AMOUNT_TOLERANCE = Decimal("0.02")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class _Number:
    """A number found in a line: its value, where it is and whether it looks like money."""

    value: Decimal
    start: int
    end: int
    text: str
    is_money: bool


@dataclass(frozen=True)
class _DateCandidate:
    value: date
    rank: int
    line_index: int
    start: int


def split_cells(line: str) -> list[tuple[int, str]]:
    """Split a layout line into (start column, text) cells separated by 2+ spaces."""
    return [(match.start(), match.group()) for match in _CELL.finditer(line)]


def parse_number(integer_part: str, fraction: str | None) -> Decimal:
    """Turn `1.234` + `,56` or `1,234` + `.56` into a Decimal.

    Separators inside the integer part are thousands separators, because the pattern only
    lets 3-digit groups through. A lone `1.234` therefore reads as 1234, not 1.234.
    """
    digits = re.sub(r"[.,]", "", integer_part)
    decimals = fraction[1:] if fraction else "0"
    return Decimal(f"{digits}.{decimals}")


def find_numbers(line: str) -> list[_Number]:
    """Find the numbers of a line, outside dates, and mark those that look like money.

    A number looks like money when it has decimals or a currency sign or code next to it.
    """
    date_spans = [span for span, _ in _find_line_dates(line, month_first=False)]
    numbers = []
    for match in _NUMBER.finditer(line):
        if any(start < match.end() and match.start() < end for start, end in date_spans):
            continue
        before, after = line[: match.start()], line[match.end() :]
        has_currency = bool(_TRAILING_CURRENCY.search(before.rstrip())) or bool(
            _LEADING_CURRENCY.match(after)
        )
        numbers.append(
            _Number(
                value=parse_number(match.group(1), match.group(2)),
                start=match.start(),
                end=match.end(),
                text=match.group(),
                is_money=bool(match.group(2)) or has_currency,
            )
        )
    return numbers


def _has_words(cell: str) -> bool:
    """Tell whether a cell contains a word of 2+ letters besides currency codes and signs."""
    return bool(_LETTERS.search(re.sub(_CURRENCY_TOKEN, " ", cell)))


def label_before(line: str, position: int) -> str:
    """Return the nearest cell left of `position` that contains words, not just numbers."""
    prefix = _TRAILING_CURRENCY.sub("", line[:position].rstrip())
    for _, cell in reversed(split_cells(prefix)):
        if _has_words(cell):
            return cell
    return ""


def _to_iso(year: int, month: int, day: int) -> date | None:
    if year < 100:
        year += 2000
    if not 1970 <= year <= 2100:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _numeric_date(
    first: int, second: int, year: int, separator: str, month_first: bool
) -> date | None:
    # NOTE: when both parts could be the month, only slash dates in USD documents are read
    # month-first. This is a guess that is wrong for, say, a US invoice billed in EUR.
    if first > 12:
        return _to_iso(year, second, first)
    if second > 12:
        return _to_iso(year, first, second)
    if separator == "/" and month_first:
        return _to_iso(year, first, second)
    return _to_iso(year, second, first)


def _find_line_dates(line: str, month_first: bool) -> list[tuple[tuple[int, int], date]]:
    """Return ((start, end), date) for each date written in the line."""
    found: list[tuple[tuple[int, int], date | None]] = []
    for match in _ISO_DATE.finditer(line):
        found.append((match.span(), _to_iso(*(int(part) for part in match.groups()))))
    for match in _NUMERIC_DATE.finditer(line):
        first, separator, second, year = match.groups()
        value = _numeric_date(int(first), int(second), int(year), separator, month_first)
        found.append((match.span(), value))
    for match in _MONTH_FIRST_DATE.finditer(line):
        month = _MONTHS[match.group(1).lower()]
        found.append((match.span(), _to_iso(int(match.group(3)), month, int(match.group(2)))))
    for match in _DAY_FIRST_DATE.finditer(line):
        month = _MONTHS[match.group(2).lower()]
        found.append((match.span(), _to_iso(int(match.group(3)), month, int(match.group(1)))))
    return [(span, value) for span, value in found if value is not None]


def _label_above(lines: Sequence[str], line_index: int, column: int) -> str:
    """Return the cell of the nearest non-empty line above that starts near `column`."""
    for above in reversed(lines[max(0, line_index - 3) : line_index]):
        if not above.strip():
            continue
        cells = [cell for start, cell in split_cells(above) if abs(start - column) <= 10]
        return cells[0] if cells else ""
    return ""


def _date_label_rank(label: str) -> int | None:
    """Return 0 for an issue-date label, 1 for a generic date label and 2 for no date label.

    Labels of other dates, such as due or order dates, return None.
    """
    tail = label[-30:]
    if _ISSUE_DATE_LABEL.search(tail):
        return 0
    if _OTHER_DATE_LABEL.search(tail):
        return None
    if _GENERIC_DATE_LABEL.search(tail):
        return 1
    return 2


def find_issue_date(lines: Sequence[str], month_first: bool) -> str:
    """Return the issue date as YYYY-MM-DD, or "unknown" when no date qualifies.

    A date labelled as the invoice date wins over one labelled just "Date", which wins over
    an unlabelled one. Due, order and delivery dates are never used. Within a rank the
    first date in the text wins.
    """
    candidates = []
    for line_index, line in enumerate(lines):
        for (start, _), value in _find_line_dates(line, month_first):
            label = label_before(line, start) or _label_above(lines, line_index, start)
            rank = _date_label_rank(label)
            if rank is not None:
                candidates.append(_DateCandidate(value, rank, line_index, start))
    if not candidates:
        return UNKNOWN
    best = min(candidates, key=lambda c: (c.rank, c.line_index, c.start))
    return best.value.isoformat()


def _clean_document_number(value: str) -> str | None:
    value = value.strip().rstrip(".,:;")
    if not re.search(r"\d", value) or len(value) > 40:
        return None
    if _find_line_dates(value, month_first=False):
        return None
    return value


def _value_below(lines: Sequence[str], line_index: int, column: int) -> str | None:
    """Return the cell under a column header on the next non-empty line, if one is there."""
    for below in lines[line_index + 1 : line_index + 3]:
        if not below.strip():
            continue
        cells = [cell for start, cell in split_cells(below) if abs(start - column) <= 10]
        return cells[0] if cells else None
    return None


def _value_after_label(lines: Sequence[str], line_index: int, start: int, end: int) -> str | None:
    """Return the value for a label cell: in the cell, in the next cell or under the label."""
    line = lines[line_index]
    in_cell = re.match(_NUMBER_VALUE, line[end:].split("  ")[0])
    if in_cell:
        return in_cell.group("value")
    next_cells = [cell for cell_start, cell in split_cells(line) if cell_start > end]
    if next_cells and re.search(r"\d", next_cells[0]):
        return next_cells[0]
    return _value_below(lines, line_index, start)


def _number_after_label(lines: Sequence[str], label: re.Pattern[str]) -> str | None:
    for line_index, line in enumerate(lines):
        for start, cell in split_cells(line):
            match = label.search(cell)
            if match is None:
                continue
            value = _value_after_label(lines, line_index, start, start + match.end())
            cleaned = _clean_document_number(value) if value else None
            if cleaned:
                return cleaned
    return None


def find_document_number(lines: Sequence[str]) -> str | None:
    """Return the invoice number next to an invoice-number label, or None if there is none.

    Invoice-number labels take the value that follows them on the same line. Only when none
    of them gives a value are weaker labels tried (Booking ID, a cell starting with No. or
    #), and those may also take the next cell or the cell below. A value must contain a
    digit and must not be a date.
    """
    for pattern in _DOCUMENT_NUMBER_LABELS:
        for line in lines:
            match = pattern.search(line)
            cleaned = _clean_document_number(match.group("value")) if match else None
            if cleaned:
                return cleaned
    for label in _WEAK_NUMBER_LABELS:
        value = _number_after_label(lines, label)
        if value:
            return value
    return None


def detect_currency(text: str) -> str:
    """Return the ISO 4217 code whose symbols and codes occur most, or "unknown".

    A bare `$` counts as USD, although Canadian, Australian and other dollars share it.
    """
    counts = {code: len(pattern.findall(text)) for code, pattern in _CURRENCY_PATTERNS}
    best = max(counts, key=lambda code: counts[code])
    return best if counts[best] else UNKNOWN


def _is_total_label(label: str) -> bool:
    return bool(_TOTAL_LABEL.search(label)) and not (
        _NOT_TOTAL_LABEL.search(label) or _is_tax_label(label)
    )


def _is_tax_label(label: str) -> bool:
    return bool(_TAX_LABEL.search(label)) and not _NOT_TAX_LABEL.search(label)


def _labelled_amounts(lines: Sequence[str]) -> list[tuple[int, str, _Number]]:
    """Return (line index, label, number) for every money amount in the document."""
    amounts = []
    for line_index, line in enumerate(lines):
        for number in find_numbers(line):
            if number.is_money:
                amounts.append((line_index, label_before(line, number.start), number))
    return amounts


def find_total(amounts: Sequence[tuple[int, str, _Number]]) -> Decimal | None:
    """Return the largest amount labelled as a total, skipping subtotals and net totals."""
    totals = [number.value for _, label, number in amounts if _is_total_label(label)]
    return max(totals) if totals else None


def find_tax(amounts: Sequence[tuple[int, str, _Number]], total: Decimal | None) -> Decimal | None:
    """Return the largest amount labelled as tax that is below the total, or None."""
    taxes = [number.value for _, label, number in amounts if _is_tax_label(label)]
    if total is not None:
        taxes = [tax for tax in taxes if tax < total]
    return max(taxes) if taxes else None


def _strip_field_label(cell: str) -> str:
    """Drop a short `Label:` prefix such as `Seller:` in front of a name."""
    head, colon, rest = cell.partition(":")
    if colon and rest.strip() and len(head) <= 25:
        return rest.strip()
    return cell


def _customer_columns(lines: Sequence[str]) -> set[tuple[int, int]]:
    """Return (line index, column) of the cells under a bill-to or ship-to header."""
    blocked = set()
    for line_index, line in enumerate(lines):
        for start, cell in split_cells(line):
            if _CUSTOMER_HEADER.search(cell):
                for offset in range(0, 4):
                    blocked.add((line_index + offset, start))
    return blocked


def _is_customer_cell(blocked: set[tuple[int, int]], line_index: int, column: int) -> bool:
    return any(index == line_index and abs(start - column) <= 10 for index, start in blocked)


def _company_name(cell: str) -> str | None:
    for part in re.split(r"\s+[-–|]\s+", cell):
        part = _strip_field_label(part)
        match = _COMPANY_SUFFIX.search(part)
        if match and _LETTERS.search(part[: match.start()]):
            return " ".join(part[: match.end()].split()).rstrip(",")
    return None


def _registered_office_name(lines: Sequence[str]) -> str | None:
    for line_index, line in enumerate(lines[1:], start=1):
        if not _REGISTERED_OFFICE.search(line):
            continue
        above = [cell for _, cell in split_cells(lines[line_index - 1])]
        if len(above) == 1 and _has_words(above[0]):
            return " ".join(above[0].split())
    return None


def find_issuer(lines: Sequence[str]) -> str:
    """Return the first company name with a legal suffix (Inc, GmbH, B.V., ...).

    Cells under a bill-to or ship-to header and cells starting with ATTN are skipped,
    because they name the customer. Without any suffix the name above a registered-office
    line is used, and after that the first non-empty cell.
    """
    blocked = _customer_columns(lines)
    for line_index, line in enumerate(lines):
        for start, cell in split_cells(line):
            if cell.upper().startswith("ATTN") or _is_customer_cell(blocked, line_index, start):
                continue
            name = _company_name(cell)
            if name:
                return name
    name = _registered_office_name(lines)
    if name:
        return name
    for line in lines:
        cells = split_cells(line)
        if cells:
            return " ".join(cells[0][1].split())
    return UNKNOWN


def _format_amount(value: Decimal) -> str:
    return str(value.quantize(_CENT))


def _format_price(value: Decimal) -> str:
    """Format a unit price with at least 2 decimals, keeping more when the document has them."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return format(value, "f")
    return _format_amount(value)


def _format_quantity(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _quantity_readings(number: _Number) -> list[Decimal]:
    """Return the values a number may have as a quantity, because `54,910` may mean 54.91."""
    readings = [number.value]
    if re.fullmatch(r"\d{1,3}[.,]\d{3}", number.text):
        readings.append(Decimal(number.text.replace(",", ".")))
    return readings


def _quantity_and_price(numbers: Sequence[_Number], amount: Decimal) -> tuple[str, str] | None:
    """Find a quantity and a unit price among the row's numbers whose product is the amount."""
    for quantity_number in numbers:
        for quantity in _quantity_readings(quantity_number):
            for price in numbers:
                if price is quantity_number or not price.is_money:
                    continue
                if abs(quantity * price.value - amount) <= _CENT:
                    return _format_quantity(quantity), _format_price(price.value)
    return None


def _item_row(line: str) -> dict[str, str | None] | None:
    """Read one table row as a line item: description cell, then numbers, last is the amount."""
    cells = split_cells(line)
    description = next(
        ((start, cell) for start, cell in cells if _has_words(cell)),
        None,
    )
    if description is None:
        return None
    start, text = description
    description_end = start + len(text)
    numbers = [n for n in find_numbers(line) if not start <= n.start < description_end]
    money = [n for n in numbers if n.is_money and n.start >= description_end]
    if not money or text.lower().startswith("incl"):
        return None
    amount = money[-1]
    pair = _quantity_and_price([n for n in numbers if n is not amount], amount.value)
    return {
        "description": " ".join(text.split()),
        "quantity": pair[0] if pair else None,
        "unit_price": pair[1] if pair else None,
        "amount": _format_amount(amount.value),
    }


def _is_summary_line(line: str) -> bool:
    for number in find_numbers(line):
        label = label_before(line, number.start)
        if number.is_money and (
            _TOTAL_LABEL.search(label) or _TAX_LABEL.search(label) or _NOT_TOTAL_LABEL.search(label)
        ):
            return True
    return False


def find_line_items(lines: Sequence[str]) -> list[dict[str, str | None]]:
    """Read the rows between the first item-table header and the first total or tax line.

    Rows whose description starts with "Incl." are skipped, because their price is part of
    the row above.
    """
    items: list[dict[str, str | None]] = []
    in_table = False
    for line in lines:
        if not in_table:
            in_table = bool(_ITEM_HEADER.search(line)) and len(split_cells(line)) >= 2
            continue
        if _is_summary_line(line):
            break
        item = _item_row(line)
        if item is not None:
            items.append(item)
    return items


def _items_add_up(
    items: Sequence[dict[str, str | None]], total: Decimal | None, tax: Decimal | None
) -> bool:
    if not items or total is None:
        return False
    item_sum = sum((Decimal(str(item["amount"])) for item in items), Decimal(0))
    targets = [total] if tax is None else [total, total - tax]
    return any(abs(item_sum - target) <= AMOUNT_TOLERANCE for target in targets)


def extract_document(text: str) -> dict[str, Any]:
    """Extract invoice fields from plain text, such as the output of `pdftotext -layout`.

    Fields that cannot be found get null where the schema allows it and "unknown" where it
    does not. Line items are returned only when their amounts add up to the total, or to
    the total minus tax, within 0.02; otherwise the list is empty.
    """
    lines = text.splitlines()
    currency = detect_currency(text)
    amounts = _labelled_amounts(lines)
    total = find_total(amounts)
    tax = find_tax(amounts, total)
    items = find_line_items(lines)
    return {
        "issuer": find_issuer(lines),
        "document_number": find_document_number(lines),
        "issue_date": find_issue_date(lines, month_first=currency == "USD"),
        "currency": currency,
        "total": _format_amount(total) if total is not None else UNKNOWN,
        "tax": _format_amount(tax) if tax is not None else None,
        "line_items": list(items) if _items_add_up(items, total, tax) else [],
    }
