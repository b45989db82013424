"""Unit tests of the simulator's rule-based stand-in model."""

from __future__ import annotations

from typing import Any

import pytest

from worker.simulator.standin import (
    PromptError,
    best_label,
    classify_ticket,
    detect_currency,
    detect_language,
    detect_priority,
    estimate_prompt_tokens,
    extract_document,
    free_text_intent,
    generate_output,
    parse_label_line,
    stem,
    summarize,
    ticket_terms,
)

CATEGORIES = ["ACCOUNT", "ORDER", "INVOICE", "REFUND", "SHIPPING_ADDRESS"]
INTENTS = ["create_account", "cancel_order", "get_invoice", "track_refund", "get_refund"]

UK_INVOICE = """\
                                              Brightwater Supplies Ltd.
                                              12 Harbour Road, Leeds

Invoice Number:    BW-20931
Invoice Date:      14/03/2024
Due Date:          13/04/2024

Description                          Qty        Unit price        Amount
Espresso beans 1kg                     3            £12.50        £37.50
Paper cups, pack of 100                2             £4.25         £8.50

                                                 Subtotal         £46.00
                                                 VAT 20%           £9.20
                                                 Total            £55.20
"""

GERMAN_INVOICE = """\
Muster Technik GmbH - Hauptstraße 5 - 10115 Berlin

Rechnungsnr.           R-2024-117
Rechnungsdatum         7. März 2024

Pos.   Menge   Bezeichnung                       Einzelpreis      Gesamtpreis
1      2       Wartung Heizungsanlage               450,00 €         900,00 €
2      1       Ersatzteil Pumpe                   1.200,00 €       1.200,00 €

                                       Nettobetrag                2.100,00 €
                                       MwSt. 19%                    399,00 €
                                       Gesamtbetrag               2.499,00 €
"""

US_INVOICE = """\
Bill To:                                 Roadrunner Parts Corp.
Wile Holdings Inc.                       88 Mesa Street
12 Canyon Road                           Phoenix, AZ

Invoice No. 5521
Date: 03/05/2024

Total Due                                $1,234.56
"""


def ticket_request(system: str, ticket: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Classify:\n<ticket>\n{ticket}\n</ticket>"},
    ]


TICKET_SYSTEM = (
    "Workflow: ticket_classification\n"
    f"Allowed categories: {', '.join(CATEGORIES)}\n"
    f"Allowed intents: {', '.join(INTENTS)}\n"
)


# Words and labels


@pytest.mark.parametrize(
    ("word", "base"),
    [
        ("orders", "order"),
        ("ordering", "order"),
        ("ordered", "order"),
        ("cancelled", "cancel"),
        ("cancelling", "cancel"),
        ("addresses", "address"),
        ("invoices", "invoice"),
        ("deleting", "delete"),
    ],
)
def test_stem_matches_base_form(word: str, base: str) -> None:
    assert stem(word) == stem(base)


def test_parse_label_line_splits_commas() -> None:
    system = "Workflow: x\nAllowed categories:  A , B_C,, D \nOther: y"

    assert parse_label_line(system, "Allowed categories") == ["A", "B_C", "D"]
    assert parse_label_line(system, "Allowed intents") == []


def test_best_label_counts_overlap() -> None:
    terms = ticket_terms("I want to cancel my order from Monday")

    assert best_label(terms, INTENTS) == "cancel_order"


def test_best_label_uses_synonyms() -> None:
    terms = ticket_terms("Could you send me the bill for last month?")

    assert best_label(terms, CATEGORIES) == "INVOICE"
    assert best_label(terms, INTENTS) == "get_invoice"


def test_best_label_phrase_synonym() -> None:
    terms = ticket_terms("I would like my money back")

    assert best_label(terms, CATEGORIES) == "REFUND"


def test_best_label_without_overlap_takes_first() -> None:
    terms = ticket_terms("Lovely weather today")

    assert best_label(terms, CATEGORIES) == "ACCOUNT"
    assert best_label(terms, ["zeta", "alpha"]) == "zeta"


def test_best_label_tie_takes_first_listed() -> None:
    terms = ticket_terms("refund")

    assert best_label(terms, ["refund_status", "refund_request"]) == "refund_status"
    assert best_label(terms, ["refund_request", "refund_status"]) == "refund_request"


def test_best_label_prefers_written_words() -> None:
    terms = ticket_terms("problems with signup")

    assert best_label(terms, ["create_account", "registration_problems"]) == (
        "registration_problems"
    )


# Ticket fields


def test_classify_ticket_returns_all_fields() -> None:
    output = classify_ticket("Where is my refund? I returned the shoes.", CATEGORIES, INTENTS)

    assert output == {
        "category": "REFUND",
        "intent": "track_refund",
        "priority": "normal",
        "language": "en",
        "summary": "Where is my refund?",
    }


def test_classify_ticket_free_intent() -> None:
    output = classify_ticket("Please cancel my purchase from yesterday", CATEGORIES, None)

    assert output["intent"] == "cancel_order"
    assert output["category"] == "ORDER"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Please cancel my purchase", "cancel_order"),
        ("Question about my invoice", "invoice_inquiry"),
        ("I want to unsubscribe", "unsubscribe_request"),
        ("Hello there friend", "hello_there"),
        ("!!!", "general_inquiry"),
    ],
)
def test_free_text_intent_snake_case(text: str, intent: str) -> None:
    assert free_text_intent(text) == intent


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("Someone made a fraudulent payment with my card", "urgent"),
        ("My card was stolen yesterday", "urgent"),
        ("Please fix this ASAP", "high"),
        ("I need this changed as soon as possible", "high"),
        ("No rush, but how do I change my address?", "low"),
        ("How do I change my address?", "normal"),
    ],
)
def test_detect_priority(text: str, priority: str) -> None:
    assert detect_priority(text) == priority


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hola, quiero cancelar mi pedido porque el paquete no llegó", "es"),
        ("Bonjour, je voudrais annuler ma commande, le colis est perdu", "fr"),
        ("Ich möchte meine Bestellung stornieren, das Paket ist nicht da", "de"),
        ("Ik wil mijn bestelling annuleren, het pakket is niet aangekomen", "nl"),
        ("I want to cancel my order", "en"),
        ("12345", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_summarize_first_sentence() -> None:
    text = "  My order   arrived\nbroken.  The box was crushed! Please help."

    assert summarize(text) == "My order arrived broken."


def test_summarize_cuts_long_text() -> None:
    text = "word " * 100

    summary = summarize(text)

    assert len(summary) <= 200
    assert summary.startswith("word word")
    assert "\n" not in summary


def test_classify_ticket_deterministic() -> None:
    text = "I was charged twice for order 881, please refund one payment"

    outputs = [classify_ticket(text, CATEGORIES, INTENTS) for _ in range(3)]

    assert outputs[0] == outputs[1] == outputs[2]


# Requests


def test_generate_output_reads_workflow_line() -> None:
    output = generate_output(ticket_request(TICKET_SYSTEM, "Where is my refund?"), None)

    assert output["category"] == "REFUND"
    assert output["intent"] == "track_refund"


def test_generate_output_uses_schema_name() -> None:
    messages = [
        {"role": "system", "content": "Extract fields."},
        {"role": "user", "content": f"<document>\n{UK_INVOICE}</document>"},
    ]
    response_format = {"type": "json_schema", "json_schema": {"name": "document_extraction"}}

    output = generate_output(messages, response_format)

    assert output["total"] == "55.20"


def test_generate_output_reads_text_parts() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": TICKET_SYSTEM}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<ticket>Send me a copy "},
                {"type": "text", "text": "of my invoice</ticket>"},
            ],
        },
    ]

    output = generate_output(messages, {"type": "json_object"})

    assert output["intent"] == "get_invoice"


def test_generate_output_repair_turn_same() -> None:
    first_turn = ticket_request(TICKET_SYSTEM, "Where is my refund?")
    repair_turn = [
        *first_turn,
        {"role": "assistant", "content": '{"category": "NOPE"}'},
        {"role": "user", "content": "Errors: category must be one of the allowed values"},
    ]

    assert generate_output(repair_turn, None) == generate_output(first_turn, None)


@pytest.mark.parametrize(
    ("system", "user", "message_part"),
    [
        ("You are helpful.", "<ticket>hi</ticket>", "Workflow:"),
        ("Workflow: ticket_classification", "<ticket>hi</ticket>", "Allowed categories"),
        ("Workflow: ticket_classification\nAllowed categories: A", "hi", "<ticket>"),
        ("Workflow: document_extraction", "<ticket>hi</ticket>", "<document>"),
    ],
)
def test_generate_output_rejects_bad_prompt(system: str, user: str, message_part: str) -> None:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]

    with pytest.raises(PromptError) as caught:
        generate_output(messages, None)

    assert message_part in str(caught.value)


def test_estimate_prompt_tokens() -> None:
    messages = [{"role": "system", "content": "abcd"}, {"role": "user", "content": "abcde"}]

    assert estimate_prompt_tokens(messages) == (1 + 4) + (2 + 4)
    assert estimate_prompt_tokens([{"role": "user", "content": None}]) == 4


# Documents


def test_extract_uk_invoice() -> None:
    output = extract_document(UK_INVOICE)

    assert output["issuer"] == "Brightwater Supplies Ltd."
    assert output["document_number"] == "BW-20931"
    assert output["issue_date"] == "2024-03-14"
    assert output["currency"] == "GBP"
    assert output["total"] == "55.20"
    assert output["tax"] == "9.20"
    assert output["line_items"] == [
        {
            "description": "Espresso beans 1kg",
            "quantity": "3",
            "unit_price": "12.50",
            "amount": "37.50",
        },
        {
            "description": "Paper cups, pack of 100",
            "quantity": "2",
            "unit_price": "4.25",
            "amount": "8.50",
        },
    ]


def test_extract_german_invoice() -> None:
    output = extract_document(GERMAN_INVOICE)

    assert output["issuer"] == "Muster Technik GmbH"
    assert output["document_number"] == "R-2024-117"
    assert output["issue_date"] == "2024-03-07"
    assert output["currency"] == "EUR"
    assert output["total"] == "2499.00"
    assert output["tax"] == "399.00"
    amounts = [item["amount"] for item in output["line_items"]]
    assert amounts == ["900.00", "1200.00"]
    assert output["line_items"][0]["quantity"] == "2"
    assert output["line_items"][0]["unit_price"] == "450.00"


def test_extract_us_invoice() -> None:
    output = extract_document(US_INVOICE)

    assert output["issuer"] == "Roadrunner Parts Corp."
    assert output["document_number"] == "5521"
    assert output["issue_date"] == "2024-03-05"
    assert output["currency"] == "USD"
    assert output["total"] == "1234.56"
    assert output["tax"] is None
    assert output["line_items"] == []


@pytest.mark.parametrize(
    ("line", "iso"),
    [
        ("Invoice date: 2024-02-29", "2024-02-29"),
        ("Date: 07.05.2014", "2014-05-07"),
        ("Date: 28/11/2022", "2022-11-28"),
        ("Invoice Date:   August 3 , 2014", "2014-08-03"),
        ("Factuurdatum: 18 april 2014", "2014-04-18"),
        ("Date de facture : 2 février 2021", "2021-02-02"),
        ("Datum: 9. Dezember 2019", "2019-12-09"),
    ],
)
def test_extract_date_formats(line: str, iso: str) -> None:
    assert extract_document(f"Shop\n{line}\nTotal 5.00 EUR")["issue_date"] == iso


def test_extract_date_prefers_invoice_label() -> None:
    text = "Order date: 01/02/2023\nPrinted 03/02/2023\nInvoice date: 05/02/2023\nTotal €1.00"

    assert extract_document(text)["issue_date"] == "2023-02-05"


def test_extract_date_skips_due_date() -> None:
    text = "Shop\nDue date: 01/02/2023\nTotal €1.00"

    assert extract_document(text)["issue_date"] == "unknown"


def test_extract_missing_fields() -> None:
    output = extract_document("Corner Bakery\nThank you for visiting")

    assert output["issuer"] == "Corner Bakery"
    assert output["document_number"] is None
    assert output["issue_date"] == "unknown"
    assert output["currency"] == "unknown"
    assert output["total"] == "unknown"
    assert output["tax"] is None
    assert output["line_items"] == []


def test_extract_items_must_add_up() -> None:
    text = """\
Northwind Ltd
Description              Amount
Widget                   £10.00
Gadget                   £15.00
Total                    £30.00
"""

    output = extract_document(text)

    assert output["total"] == "30.00"
    assert output["line_items"] == []


def test_extract_number_below_header() -> None:
    text = """\
Guest House Receipt
Booking ID              Payment Mode
QX7741                  Card
Grand Total             Rs 2500
"""

    output = extract_document(text)

    assert output["document_number"] == "QX7741"
    assert output["currency"] == "INR"
    assert output["total"] == "2500.00"


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("Total $5.00", "USD"),
        ("Total 5,00 €", "EUR"),
        ("Total 5.00 EUR", "EUR"),
        ("Total £5.00", "GBP"),
        ("Razem 5,00 zł", "PLN"),
        ("Total Rs 500", "INR"),
        ("Total CHF 5.00", "CHF"),
    ],
)
def test_detect_currency(text: str, currency: str) -> None:
    assert detect_currency(text) == currency


@pytest.mark.parametrize(
    ("line", "total"),
    [
        ("Total: 1.234,56 €", "1234.56"),
        ("Total: $1,234.56", "1234.56"),
        ("Amount due   EUR 99", "99.00"),
        ("Totaal     € 717,97", "717.97"),
    ],
)
def test_extract_total_number_formats(line: str, total: str) -> None:
    assert extract_document(f"Shop\n{line}")["total"] == total


def test_extract_total_skips_subtotal() -> None:
    text = "Shop\nSubtotal   $900.00\nTotal   $100.00"

    assert extract_document(text)["total"] == "100.00"
