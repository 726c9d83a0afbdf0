"""PII and secret redaction: find spans, replace them with typed placeholders.

``find(text)`` returns the :class:`Span` s found; ``redact(text)`` replaces each with its
placeholder. What is detected, and how look-alikes are kept out:

============  =========  ====================================================================
kind          written    rule
============  =========  ====================================================================
SECRET        [SECRET]   PEM private keys; OpenAI ``sk-…``, Stripe ``sk_live_…``; AWS access
                         key ids ``AKIA…``/``ASIA…``; GitHub ``ghp_/gho_/ghu_/ghs_/ghr_…`` and
                         ``github_pat_…``; Slack ``xox?-…``; Google ``AIza…``; JWTs; the token
                         after ``Bearer``; the value after ``password=``/``secret key:``/
                         ``api_key=``/``token=`` … (after ``:`` only if it looks like a secret:
                         a digit or symbol, or 12+ characters)
EMAIL         [EMAIL]    local@domain.tld; file names like ``icon@2x.png`` are not emails
IBAN          [IBAN]     country code + check digits + BBAN, with the country's length
                         (ISO 13616 registry) and the mod-97 checksum; spaces allowed
CARD          [CARD]     13–19 digits, plain or in 4-digit groups (Amex 4-6-5, Diners 4-6-4),
                         a known network prefix (Visa, Mastercard incl. 2-series, Amex,
                         Diners, Discover, JCB, UnionPay, Maestro) and a valid Luhn digit;
                         an unformatted run right after "order", "tracking", … is not a card
SSN           [SSN]      US Social Security numbers ``AAA-GG-SSSS`` (dashes required; the
                         never-issued 000/666/9xx areas, 00 groups and 0000 serials excluded)
NINO          [NINO]     UK National Insurance numbers ``QQ 12 34 56 C`` (HMRC's prefix rules)
IPV4          [IP]       dotted quads 0–255; not part of a longer dotted number, not after
                         "version"/"build"/"release"/"section"/"v"; loopback (127.x) and
                         0.0.0.0 are kept (they identify nobody)
IPV6          [IP]       anything ``ipaddress`` accepts as IPv6 with at least two colons
                         (so times and MAC addresses are not); ``::1`` and ``::`` are kept
PHONE         [PHONE]    ``+CC …`` / ``00CC …`` international numbers; national numbers in
                         groups (``(555) 123-4567``, ``1-800-555-0199``, ``020 7946 0958``,
                         ``07700 900123``);
                         9–15 digits; unformatted runs only with a leading 0 or "phone"/
                         "call"/"tel"… just before; never dates, and not after "order",
                         "invoice", "tracking", "ISBN", … unless a phone word is nearer
============  =========  ====================================================================

National ids covered: US SSN and UK NINO only. :class:`RedactingFilter` applies
:func:`redact` to every log record (message, arguments and string extras).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmeco.plugins.manager import registry_if_ready
from llmeco.plugins.specs import RedactionRuleSpec

log = logging.getLogger(__name__)

PLACEHOLDERS = {
    "SECRET": "[SECRET]",
    "EMAIL": "[EMAIL]",
    "IBAN": "[IBAN]",
    "CARD": "[CARD]",
    "SSN": "[SSN]",
    "NINO": "[NINO]",
    "IPV4": "[IP]",
    "IPV6": "[IP]",
    "PHONE": "[PHONE]",
}
#: When spans overlap, the kind listed first wins (then the longer span).
PRIORITY = {kind: i for i, kind in enumerate(PLACEHOLDERS)}


@dataclass(frozen=True)
class Span:
    """One detected item: ``text[start:end]`` is a ``kind``."""

    start: int
    end: int
    kind: str
    text: str
    #: The placeholder a plugin's rule chose (built-in kinds use :data:`PLACEHOLDERS`).
    mark: str = ""

    @property
    def placeholder(self) -> str:
        """What :func:`redact` writes in its place."""
        return self.mark or PLACEHOLDERS.get(self.kind, f"[{self.kind}]")


# ---- secrets --------------------------------------------------------------------------------

_SECRET_TOKENS = re.compile(
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY-----"
    r"|\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{20,}"
    r"|\b[srp]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,255}\b"
    r"|\bgithub_pat_[A-Za-z0-9_]{22,255}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
)
_BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)")
_ASSIGNED = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:password|passwd|pwd|passphrase|secret|client_secret|"
    r"secret[ _-]?key|api[ _-]?key|"
    r"access[_-]?token|auth[_-]?token|refresh[_-]?token|token|private[_-]?key)\b"
    r"[\"']?\s*(=|:)\s*(?:\"([^\"\s]{1,200})\"|'([^'\s]{1,200})'|([^\s,;&\"'<>()\[\]]{1,200}))"
)
_NOT_A_SECRET = re.compile(r"^(?:\*+|x+|\.+|<[^>]*>|\$\{?\w+\}?|null|none|true|false)$", re.I)


def _secrets(text: str) -> list[Span]:
    spans = [Span(m.start(), m.end(), "SECRET", m.group()) for m in _SECRET_TOKENS.finditer(text)]
    spans += [Span(m.start(1), m.end(1), "SECRET", m.group(1)) for m in _BEARER.finditer(text)]
    for m in _ASSIGNED.finditer(text):
        group = next(g for g in (2, 3, 4) if m.group(g) is not None)
        value = m.group(group)
        if group == 4 and value.endswith("."):
            value = value[:-1]  # the full stop ending the sentence
        if not value or _NOT_A_SECRET.match(value) or value.startswith("["):
            continue
        looks_secret = bool(re.search(r"[\d\W_]", value)) or len(value) >= 12
        if m.group(1) == ":" and not looks_secret:
            continue  # "password: reset it …" is prose
        start = m.start(group)
        spans.append(Span(start, start + len(value), "SECRET", value))
    return spans


# ---- e-mail ---------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+'-])[A-Za-z0-9][A-Za-z0-9._%+'-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})\b"
)
_FILE_WORDS = "png jpg jpeg gif svg webp bmp ico tif tiff pdf js mjs ts css html htm json xml "
_FILE_WORDS += "yaml yml txt md csv zip gz tar py rb go rs java mp3 mp4 wav mov"
_FILE_EXTENSIONS = frozenset(_FILE_WORDS.split())


def _emails(text: str) -> list[Span]:
    return [
        Span(m.start(), m.end(), "EMAIL", m.group())
        for m in _EMAIL.finditer(text)
        if m.group(1).lower() not in _FILE_EXTENSIONS
    ]


# ---- IBAN -----------------------------------------------------------------------------------

#: IBAN length by country (ISO 13616 registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})(?=[ ]?[A-Za-z0-9])")


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: known country, its length, and mod-97 of the rearranged digits is 1."""
    iban = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def _ibans(text: str) -> list[Span]:
    spans = []
    for m in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(m.group(1).upper())
        if length is None:
            continue
        # Take exactly the country's length of characters, allowing single spaces between.
        i, count = m.start(), 0
        end = None
        while i < len(text) and count < length:
            c = text[i]
            if c.isascii() and c.isalnum():
                count += 1
                i += 1
            elif c == " " and count > 0 and i + 1 < len(text) and text[i + 1] != " ":
                i += 1
            else:
                break
        if count == length and not (i < len(text) and text[i].isascii() and text[i].isalnum()):
            end = i
        if end is not None and iban_valid(text[m.start() : end]):
            spans.append(Span(m.start(), end, "IBAN", text[m.start() : end]))
    return spans


# ---- context words --------------------------------------------------------------------------

_NEGATIVE = re.compile(
    r"\b(?:order|orders|invoice|inv|tracking|track|shipment|parcel|package|ref|reference|"
    r"ticket|case|isbn|issn|serial|sku|part|model|build|version|ver|release|po|batch|lot|"
    r"confirmation|booking|transaction|txn|receipt|item|product|customer id|member|policy|"
    r"account id|id)\b",
    re.I,
)
_PHONE_WORDS = re.compile(
    r"\b(?:phone|tel|telephone|call|calling|mobile|cell|fax|whatsapp|sms|text|ring|dial|"
    r"contact|hotline|landline|reach (?:me|us|him|her) (?:at|on))\b",
    re.I,
)
_CARD_WORDS = re.compile(r"\b(?:card|visa|mastercard|amex|credit|debit|cc|pan)\b", re.I)


def _context(text: str, start: int, positive: re.Pattern[str], window: int = 32) -> int:
    """+1 if a positive word is the nearest cue before ``start``, -1 if a negative one is,
    0 if neither appears in the window."""
    before = text[max(0, start - window) : start]
    pos = [m.end() for m in positive.finditer(before)]
    neg = [m.end() for m in _NEGATIVE.finditer(before)]
    if not pos and not neg:
        return 0
    if not neg or (pos and pos[-1] >= neg[-1]):
        return 1
    return -1


# ---- payment cards --------------------------------------------------------------------------

_CARD = re.compile(
    r"(?<![\w+-])(?:"
    r"\d{13,19}(?!\w|[-.]\d)"
    r"|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?(?!\w|[-.]\d|\1\d)"
    r"|\d{4}([ -])\d{6}\2\d{4,5}(?!\w|[-.]\d|\2\d)"
    r")"
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod-10) check every payment card number passes."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_network_ok(digits: str) -> bool:
    """Whether the number's prefix and length belong to a card network."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # Amex
    if p2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19  # Diners
    if p2 == 35:
        return 16 <= n <= 19  # JCB
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649 or p2 == 62:
        return 16 <= n <= 19  # Discover, UnionPay
    if p2 in (50, 56, 57, 58) or digits[0] == "6":
        return 12 <= n <= 19  # Maestro
    return False


def _cards(text: str) -> list[Span]:
    spans = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if not (13 <= len(digits) <= 19 and luhn_valid(digits) and card_network_ok(digits)):
            continue
        if m.group().isdigit() and _context(text, m.start(), _CARD_WORDS) < 0:
            continue
        spans.append(Span(m.start(), m.end(), "CARD", m.group()))
    return spans


# ---- national ids ---------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w]|-\d)")
_NINO = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"(?: ?\d{2}){3} ?[A-D]\b"
)


def _national_ids(text: str) -> list[Span]:
    spans = [Span(m.start(), m.end(), "SSN", m.group()) for m in _SSN.finditer(text)]
    spans += [Span(m.start(), m.end(), "NINO", m.group()) for m in _NINO.finditer(text)]
    return spans


# ---- IP addresses ---------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
#: Loopback and "any" addresses identify nobody (and fill server start-up logs).
_NOT_PERSONAL_IPS = frozenset({"0.0.0.0", "255.255.255.255"})
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\d|\.\d|\w)")
_VERSION_WORDS = re.compile(
    r"(?:\b(?:version|ver|build|release|firmware|v|section|chapter|clause|rule|step)\.?|§)\s*$",
    re.I,
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|(?:\d{1,3}\.){3}\d{1,3})"
    r"(?:%[\w.]+)?(?![\w:])"
)


def _ips(text: str) -> list[Span]:
    spans = []
    for m in _IPV4.finditer(text):
        if _VERSION_WORDS.search(text[max(0, m.start() - 12) : m.start()]):
            continue
        if m.group() in _NOT_PERSONAL_IPS or m.group().startswith("127."):
            continue
        spans.append(Span(m.start(), m.end(), "IPV4", m.group()))
    for m in _IPV6.finditer(text):
        candidate = m.group().split("%", 1)[0]
        if candidate.count(":") < 2 or not any(c.isalnum() for c in candidate):
            continue
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified:
            continue
        spans.append(Span(m.start(), m.end(), "IPV6", m.group()))
    return spans


# ---- phone numbers --------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w/.+-])(?<!\d )(?<!\d,)(?:"
    r"(?:\+|00)[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|1[ .-]\d{3}[ .-]\d{3}[ .-]\d{4}"
    r"|\(\d{2,5}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|\d{2,5}[ .-]\d{3,4}[ .-]\d{3,4}"
    r"|0\d{3,4}[ .-]?\d{6,7}"
    r"|\d{9,15}"
    r")(?![\w/]|[ .-]\d)"
)
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def _phones(text: str) -> list[Span]:
    spans = []
    for m in _PHONE.finditer(text):
        s = m.group()
        digits = sum(c.isdigit() for c in s)
        least = 8 if s.startswith("+") else 11 if s.startswith("00") else 9
        if not least <= digits <= 15 or _DATE.match(s):
            continue
        context = _context(text, m.start(), _PHONE_WORDS)
        if context < 0:
            continue
        if s.isdigit() and not s.startswith("0") and context <= 0:
            continue  # a bare run of digits is a phone number only when introduced as one
        spans.append(Span(m.start(), m.end(), "PHONE", s))
    return spans


# ---- API ------------------------------------------------------------------------------------

_DETECTORS: dict[str, Callable[[str], list[Span]]] = {
    "SECRET": _secrets,
    "EMAIL": _emails,
    "IBAN": _ibans,
    "CARD": _cards,
    "SSN": _national_ids,
    "NINO": _national_ids,
    "IPV4": _ips,
    "IPV6": _ips,
    "PHONE": _phones,
}


def _only(kind: str) -> Callable[[str], list[tuple[int, int]]]:
    detect = _DETECTORS[kind]
    return lambda text: [(s.start, s.end) for s in detect(text) if s.kind == kind]


def builtin_rules() -> list[RedactionRuleSpec]:
    """The built-in detectors as redaction rules (registered by :mod:`.plugin`)."""
    return [
        RedactionRuleSpec(kind, PLACEHOLDERS[kind], _only(kind), PRIORITY[kind])
        for kind in PLACEHOLDERS
    ]


_BUILTIN_RULES = builtin_rules()


def _rules() -> list[RedactionRuleSpec]:
    registry = registry_if_ready()
    rules = registry.redaction_rules() if registry is not None else []
    return rules or _BUILTIN_RULES


_failing = threading.local()


def _detect(rule: RedactionRuleSpec, text: str) -> Sequence[tuple[int, int]]:
    """A rule's spans; a rule that raises is skipped for this text and the failure logged
    (kind and exception type only: never the text)."""
    try:
        return rule.detect(text)
    except Exception as exc:
        if not getattr(_failing, "active", False):  # the log line is redacted too
            _failing.active = True
            try:
                log.error("redaction rule %s failed: %s", rule.kind, type(exc).__name__)
            finally:
                _failing.active = False
        return []


def find(text: str) -> list[Span]:
    """Every PII/secret span in ``text``, left to right, without overlaps.

    Runs every registered rule (the built-ins and any a plugin adds, e.g. clinical
    identifiers); where spans overlap, the rule with the lower priority number wins, then the
    longer span.
    """
    candidates: list[tuple[int, Span]] = []
    for rule in _rules():
        mark = "" if PLACEHOLDERS.get(rule.kind) == rule.placeholder else rule.placeholder
        for start, end in _detect(rule, text):
            if 0 <= start < end <= len(text):
                candidates.append(
                    (rule.priority, Span(start, end, rule.kind, text[start:end], mark))
                )
    candidates.sort(key=lambda c: (c[0], c[1].start - c[1].end, c[1].start))
    taken: list[Span] = []
    for _, span in candidates:
        if all(span.end <= o.start or span.start >= o.end for o in taken):
            taken.append(span)
    return sorted(taken, key=lambda s: s.start)


def redact_counts(text: str) -> tuple[str, Counter[str]]:
    """``text`` with every span replaced by its placeholder, and how many of each kind."""
    spans = find(text)
    if not spans:
        return text, Counter()
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(span.placeholder)
        pos = span.end
    out.append(text[pos:])
    return "".join(out), Counter(s.kind for s in spans)


def redact(text: str) -> str:
    """``text`` with emails, phones, cards, IBANs, IPs, national ids and secrets replaced by
    typed placeholders such as ``[EMAIL]``."""
    return redact_counts(text)[0]


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments and string extras.

    The message is formatted with its arguments first (so PII passed as ``%s`` is caught),
    then ``args`` is cleared.
    """

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in self._STANDARD:
                record.__dict__[key] = _redact_value(value)
        return True


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value
