"""Ticket classification by word overlap between the ticket and each allowed label."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from worker.simulator.standin.requests import SUMMARY_MAX_CHARS

_WORD = re.compile(r"[^\W\d_]+")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words too common to tell labels apart, dropped from label and ticket words alike.
_STOPWORDS = _word_set(
    "a an the to of for my me i is it in on at and or with be do can how what not up "
    "this that you your we our please"
)

# A ticket word also counts as each listed label word. Keys and values are plain words and
# get stemmed when the module loads.
_SYNONYMS: dict[str, str] = {
    "purchase": "order",
    "shop": "order place",
    "buy": "order place",
    "bought": "order",
    "item": "order",
    "product": "order",
    "cancel": "cancellation delete",
    "termination": "cancellation delete",
    "removal": "delete",
    "cancellation": "cancel",
    "bill": "invoice",
    "billing": "invoice",
    "receipt": "invoice",
    "reimburse": "refund",
    "reimbursement": "refund",
    "repay": "refund",
    "rebate": "refund",
    "compensation": "refund",
    "deliver": "delivery shipping",
    "delivery": "shipping",
    "shipment": "delivery shipping",
    "ship": "delivery shipping",
    "arrive": "delivery",
    "package": "delivery shipping",
    "parcel": "delivery shipping",
    "courier": "delivery shipping",
    "password": "account",
    "pwd": "password account",
    "pin": "password account",
    "passcode": "password account",
    "login": "account",
    "username": "account",
    "profile": "account",
    "user": "account",
    "register": "registration account create",
    "registration": "account",
    "signup": "registration account create",
    "forgot": "recover",
    "forgotten": "recover",
    "reset": "recover",
    "retrieve": "recover",
    "restore": "recover",
    "recovery": "recover",
    "lost": "recover",
    "remove": "delete",
    "close": "delete",
    "terminate": "delete",
    "erase": "delete",
    "open": "create",
    "modify": "change edit",
    "update": "change edit",
    "edit": "change",
    "change": "edit",
    "alter": "change edit",
    "correct": "change edit",
    "swap": "switch change",
    "pay": "payment",
    "paid": "payment",
    "card": "payment",
    "credit": "payment",
    "debit": "payment",
    "paypal": "payment",
    "transfer": "payment",
    "method": "option",
    "option": "method",
    "way": "method option",
    "mode": "method option",
    "modality": "method option",
    "charge": "fee",
    "penalty": "fee",
    "cost": "fee",
    "human": "contact",
    "agent": "contact human",
    "person": "human contact",
    "representative": "agent contact human",
    "operator": "agent contact",
    "someone": "human contact",
    "somebody": "human contact",
    "speak": "contact",
    "talk": "contact",
    "call": "contact",
    "phone": "contact",
    "chat": "contact",
    "reach": "contact",
    "support": "contact",
    "complain": "complaint feedback",
    "complaint": "feedback",
    "reclamation": "complaint feedback",
    "dissatisfied": "complaint feedback",
    "unhappy": "complaint feedback",
    "disappointed": "complaint feedback",
    "claim": "complaint",
    "review": "feedback",
    "opinion": "review feedback",
    "comment": "review feedback",
    "rate": "review feedback",
    "rating": "review feedback",
    "experience": "review feedback",
    "feedback": "review",
    "subscribe": "newsletter subscription",
    "unsubscribe": "newsletter subscription",
    "subscription": "newsletter",
    "newsletter": "subscription",
    "where": "track",
    "wait": "track",
    "expect": "track period",
    "when": "period",
    "eta": "track period",
    "status": "track",
    "locate": "track",
    "see": "check",
    "view": "check",
    "look": "check",
    "verify": "check",
    "find": "check",
    "show": "check",
    "consult": "check",
    "list": "check",
    "download": "get",
    "obtain": "get",
    "receive": "get",
    "send": "get",
    "copy": "get",
    "problem": "issue",
    "issue": "problem",
    "error": "issue problem",
    "trouble": "issue problem",
    "fail": "issue problem",
    "unable": "issue problem",
    "cannot": "issue problem",
    "terms": "policy",
    "rule": "policy",
    "conditions": "policy",
    "add": "set",
    "setup": "set",
    "enter": "set",
}

# Multi-word expressions, matched on the lowercased text before splitting it into words.
_PHRASES: dict[str, str] = {
    "money back": "refund",
    "sign up": "registration account create",
    "sign in": "account",
    "log in": "account",
    "customer service": "contact",
    "customer support": "contact customer service",
    "how long": "period",
    "how soon": "period",
    "set up": "set",
    "mailing list": "newsletter subscription",
    "go through": "track",
    "get in touch": "contact",
    "delivery address": "shipping address",
}

_URGENT_WORDS = _word_set(
    "urgent urgently emergency fraud fraudulent stolen hacked unauthorized unauthorised"
)
_HIGH_WORDS = _word_set("asap immediately important quickly critical")
_HIGH_PHRASES = ("as soon as possible", "right away", "right now", "locked out")
_LOW_PHRASES = ("no rush", "no hurry", "whenever you", "just curious", "just wondering")

_LANGUAGE_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _word_set("the and to of i my is it you for with in on have can how what do"),
    "es": _word_set("el la los las de que y en un una mi para por con es quiero cómo"),
    "fr": _word_set("le la les de des et je mon ma mes pour pas est une un avec vous"),
    "de": _word_set("der die das und ich mein meine nicht ist ein eine mit für wie zu"),
    "nl": _word_set("de het een en ik mijn niet is met voor van hoe wil kan graag"),
}

# Actions and objects that name a free-text intent, as stem -> the word used in the intent.
_INTENT_ACTIONS: dict[str, str] = {
    "cancel": "cancel",
    "change": "change",
    "modify": "change",
    "updat": "change",
    "edit": "change",
    "track": "track",
    "check": "check",
    "view": "check",
    "get": "get",
    "download": "get",
    "creat": "create",
    "open": "create",
    "register": "create",
    "delet": "delete",
    "remov": "delete",
    "close": "delete",
    "recover": "recover",
    "reset": "reset",
    "pay": "pay",
    "return": "return",
    "complain": "complain",
    "contact": "contact",
    "speak": "contact",
    "talk": "contact",
    "subscrib": "subscribe",
    "unsubscrib": "unsubscribe",
}
_INTENT_OBJECTS: dict[str, str] = {
    "order": "order",
    "purchas": "order",
    "invoic": "invoice",
    "bill": "invoice",
    "receipt": "invoice",
    "refund": "refund",
    "account": "account",
    "profil": "account",
    "password": "password",
    "payment": "payment",
    "card": "card",
    "delivery": "delivery",
    "shipment": "delivery",
    "packag": "delivery",
    "address": "address",
    "subscription": "subscription",
    "newsletter": "newsletter",
    "fee": "fee",
    "agent": "agent",
    "transfer": "transfer",
}


def stem(word: str) -> str:
    """Strip common English inflections so that "orders", "ordered" and "ordering" match.

    This is a deliberately light stemmer: plural s, -ing, -ed, a doubled final consonant
    left by those and a final e. Labels and tickets go through the same function, so
    imperfect stems still match each other.
    """
    word = word.lower()
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    stripped = _strip_verb_suffix(word)
    doubled = len(stripped) > 3 and stripped[-1] == stripped[-2] and stripped[-1] in "bdglmnprt"
    if stripped != word and doubled:
        stripped = stripped[:-1]
    word = stripped
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def _strip_verb_suffix(word: str) -> str:
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _stem_words(text: str) -> list[str]:
    return [stem(word) for word in _WORD.findall(text.lower())]


def _build_synonyms() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for word, targets in _SYNONYMS.items():
        table.setdefault(stem(word), set()).update(_stem_words(targets))
    return {key: frozenset(values) for key, values in table.items()}


_STEMMED_SYNONYMS = _build_synonyms()


@dataclass(frozen=True)
class TicketTerms:
    """Stemmed words of a ticket: those it contains and those its synonyms add."""

    written: frozenset[str]
    expanded: frozenset[str]


def ticket_terms(text: str) -> TicketTerms:
    """Stem a ticket's words and add the label words that its synonyms and phrases imply."""
    lowered = " ".join(re.sub(r"[-_/]", " ", text.lower()).split())
    written = set(_stem_words(lowered)) - _STOPWORDS
    expanded = set(written)
    for phrase, targets in _PHRASES.items():
        if phrase in lowered:
            expanded.update(_stem_words(targets))
    for term in written:
        expanded.update(_STEMMED_SYNONYMS.get(term, ()))
    return TicketTerms(frozenset(written), frozenset(expanded - _STOPWORDS))


def label_words(label: str) -> frozenset[str]:
    """Split a label such as `cancel_order` into stemmed words, without stopwords if possible."""
    words = {stem(word) for word in re.split(r"[_\s\-/]+", label.lower()) if word}
    meaningful = words - _STOPWORDS
    return frozenset(meaningful or words)


def best_label(terms: TicketTerms, labels: Sequence[str]) -> str:
    """Pick the label whose words overlap the ticket's terms most.

    The score is the number of matched label words, then how many of those the ticket
    contains itself rather than through a synonym, then the share of the label's words
    that matched. Remaining ties go to the label listed first, so with no overlap at all
    the first label wins.
    """
    best_index = 0
    best_score: tuple[int, int, float] = (-1, -1, -1.0)
    for index, label in enumerate(labels):
        words = label_words(label)
        matched = len(words & terms.expanded)
        written = len(words & terms.written)
        score = (matched, written, matched / len(words) if words else 0.0)
        if score > best_score:
            best_index, best_score = index, score
    return labels[best_index]


def free_text_intent(text: str) -> str:
    """Build a short snake_case intent such as `cancel_order` from the ticket's own words."""
    stems = _stem_words(text)
    action = next((_INTENT_ACTIONS[s] for s in stems if s in _INTENT_ACTIONS), None)
    obj = next((_INTENT_OBJECTS[s] for s in stems if s in _INTENT_OBJECTS), None)
    if action and obj:
        return f"{action}_{obj}"
    if obj:
        return f"{obj}_inquiry"
    if action:
        return f"{action}_request"
    content = [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]
    return "_".join(content[:2]) if content else "general_inquiry"


def detect_priority(text: str) -> str:
    """Return urgent, high, low or normal from words that signal urgency or its absence."""
    lowered = " ".join(text.lower().split())
    words = set(_WORD.findall(lowered))
    if words & _URGENT_WORDS:
        return "urgent"
    if words & _HIGH_WORDS or any(phrase in lowered for phrase in _HIGH_PHRASES):
        return "high"
    if any(phrase in lowered for phrase in _LOW_PHRASES):
        return "low"
    return "normal"


def detect_language(text: str) -> str:
    """Return the ISO 639-1 code of the language whose stopwords occur most often.

    English wins ties, so a text without any listed stopword returns "en".
    """
    words = _WORD.findall(text.lower())
    counts = {
        language: sum(word in stopwords for word in words)
        for language, stopwords in _LANGUAGE_STOPWORDS.items()
    }
    best = max(counts, key=lambda language: counts[language])
    return best if counts[best] > counts["en"] else "en"


def summarize(text: str) -> str:
    """Return the first sentence of the text on one line, cut to at most 200 characters."""
    collapsed = " ".join(text.split())
    match = re.search(r"[.!?](?=\s|$)", collapsed)
    sentence = collapsed[: match.end()] if match else collapsed
    return sentence[:SUMMARY_MAX_CHARS].rstrip()


def classify_ticket(
    text: str, categories: Sequence[str], intents: Sequence[str] | None
) -> dict[str, str]:
    """Classify a ticket into one of `categories` and one of `intents`.

    Without an intent list the intent is free text built from the ticket's words.
    """
    terms = ticket_terms(text)
    return {
        "category": best_label(terms, categories),
        "intent": best_label(terms, intents) if intents else free_text_intent(text),
        "priority": detect_priority(text),
        "language": detect_language(text),
        "summary": summarize(text),
    }
