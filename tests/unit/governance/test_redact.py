"""PII redaction: each kind, its look-alikes, the logging filter, and the labelled benchmark."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
from pathlib import Path

import pytest

from llmeco.governance.redact import (
    RedactingFilter,
    card_network_ok,
    find,
    iban_valid,
    luhn_valid,
    redact,
    redact_counts,
)
from llmeco.observability.logging import configure_logging

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+x@example.co.uk now", "mail [EMAIL] now"),
        ("call +44 20 7946 0958.", "call [PHONE]."),
        ("call (415) 555-0132 or 1-800-555-0199", "call [PHONE] or [PHONE]"),
        ("card 4111 1111 1111 1111, amex 3782 822463 10005", "card [CARD], amex [CARD]"),
        ("IBAN DE89 3704 0044 0532 0130 00 thanks", "IBAN [IBAN] thanks"),
        ("from 10.0.0.5:8080 and [2001:db8::1]:443", "from [IP]:8080 and [[IP]]:443"),
        ("SSN 078-05-1120, NINO AB 12 34 56 C", "SSN [SSN], NINO [NINO]"),
        ("key sk-proj-4fT9x2LmQw8ZrV1bN6cKp3YdHs7UeJ0a", "key [SECRET]"),
        ("AKIAIOSFODNN7EXAMPLE ghp_16C7e42F292c6912E7710c838347Ae178B4a", "[SECRET] [SECRET]"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [SECRET]"),
        ('password=hunter2 db_password: "S3cr3t!"', 'password=[SECRET] db_password: "[SECRET]"'),
    ],
)
def test_each_kind_is_replaced_by_its_placeholder(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order 20240115003 shipped on 2024-01-17 at 10:45:12.",
        "Tracking 1Z999AA10123456784; ISBN 978-0-306-40615-7; invoice INV-2024-000123.",
        "Card 4111 1111 1111 1112 fails Luhn; IBAN DE89 3704 0044 0532 0130 01 fails mod 97.",
        "Upgrade to version 1.2.3.4; see section 3.1.4.1; MAC 00:1A:2B:3C:4D:5E.",
        "000-12-3456 is never issued; logo@2x.png is a file; user@localhost has no domain.",
        "Password: reset it in Settings; api_key=<YOUR_KEY>; password=********.",
        "Population 1,234,567,890; serial SN 4567-8910-1112; parcel 123456789012.",
        "Use a Bearer token; call 911; Call ID 1234567890 dropped.",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert find(text) == []


def test_checksums_and_networks() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert card_network_ok("378282246310005") and not card_network_ok("1234567890123452")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82WEST1234569876543")


def test_spans_counts_and_idempotence() -> None:
    text = "a@b.io, +1 415 555 0198, a@b.io"
    spans = find(text)
    assert [(s.kind, s.text) for s in spans] == [
        ("EMAIL", "a@b.io"),
        ("PHONE", "+1 415 555 0198"),
        ("EMAIL", "a@b.io"),
    ]
    assert text[spans[1].start : spans[1].end] == "+1 415 555 0198"
    out, counts = redact_counts(text)
    assert counts == {"EMAIL": 2, "PHONE": 1}
    assert redact(out) == out  # placeholders are not PII


def test_json_logs_are_redacted() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", stream)
        logging.getLogger("llmeco.test").info(
            "user %s paid with %s",
            "jane@example.com",
            "4111 1111 1111 1111",
            extra={"ip": "203.0.113.7", "details": {"token": "password=hunter2"}, "n": 5},
        )
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["msg"] == "user [EMAIL] paid with [CARD]"
    assert line["ip"] == "[IP]" and line["details"] == {"token": "password=[SECRET]"}
    assert line["n"] == 5


def test_filter_never_drops_records() -> None:
    record = logging.makeLogRecord({"msg": "%d items", "args": ("x",)})  # a bad format
    assert RedactingFilter().filter(record)
    assert record.msg == "%d items"


def test_labelled_benchmark_meets_targets() -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_redaction", ROOT / "benchmarks" / "redaction.py"
    )
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.evaluate()
    assert report["lines"] >= 200
    assert report["recall"] >= 0.95 and report["precision"] >= 0.90, report
