"""Readers (formats, chat layouts, per-file errors) and cleaning (normalise, PII, quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmeco.data.clean import normalize_text, quality_problem, redact_pii
from llmeco.data.dedup import NearDuplicateFilter, content_hash
from llmeco.data.documents import html_markdown
from llmeco.data.readers import expand_inputs, read_file
from llmeco.data.split import is_validation
from llmeco.errors import ConfigError, NotFound


def test_text_and_markdown_split_into_paragraphs(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("First para\nstill first.\n\nSecond one.\n")
    (tmp_path / "b.md").write_text("# Title\n\nBody text.")
    assert [r["text"] for r in read_file(tmp_path / "a.txt")] == [
        "First para\nstill first.",
        "Second one.",
    ]
    assert [r["text"] for r in read_file(tmp_path / "b.md")] == ["# Title", "Body text."]


def test_html_keeps_visible_text_only() -> None:
    html = (
        "<html><head><style>p{}</style><script>var x=1;</script></head><body><nav>Menu</nav>"
        "<h1>Hello &amp; welcome</h1><p>Some <b>bold</b> text.</p></body></html>"
    )
    text = html_markdown(html)
    assert "Hello & welcome" in text and "Some bold text." in text
    assert "var x" not in text and "Menu" not in text and "p{}" not in text


def test_chat_layouts_are_normalised_to_messages(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"instruction": "Translate", "input": "chat", "output": "cat"},
        {"text": "plain prose"},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = read_file(path)
    assert records[1]["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    assert records[2]["messages"][0]["content"] == "Translate\n\nchat"
    assert records[3] == {"text": "plain prose", "source": "d.jsonl"}


def test_csv_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"hello, world",1\n')
    assert read_file(path)[0]["text"] == "hello, world"


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: invalid JSON"):
        read_file(bad)
    doc = tmp_path / "report.doc"
    doc.write_bytes(b"\xd0\xcf")
    with pytest.raises(ConfigError, match=r"report\.doc: unsupported format '\.doc'"):
        read_file(doc)
    pdf = tmp_path / "broken.pdf"
    pdf.write_bytes(b"%PDF-1.4 nothing else")
    with pytest.raises(ConfigError, match=r"broken\.pdf: cannot read PDF"):
        read_file(pdf)
    with pytest.raises(NotFound, match="missing"):
        expand_inputs([tmp_path / "missing"])


def test_normalize_text() -> None:
    assert normalize_text("Cafe\u0301  au\tlait \r\n\n\n\nnext\x07") == "Café au lait\n\nnext"


def test_redact_pii() -> None:
    text = (
        "Mail jane.doe@example.com or call +44 20 7946 0958. "
        "IBAN DE89 3704 0044 0532 0130 00, card 4111 1111 1111 1111. Order 12345."
    )
    out, counts = redact_pii(text)
    assert "[EMAIL]" in out and "[PHONE]" in out and "[IBAN]" in out and "[CARD]" in out
    assert "jane" not in out and "4111" not in out and "7946" not in out
    assert "Order 12345" in out  # short numbers are not PII
    assert counts == {"email": 1, "phone": 1, "iban": 1, "card": 1}


def test_quality_rules() -> None:
    assert quality_problem("   ", 5, 0.5) == "empty"
    assert quality_problem("hi", 5, 0.5) == "too_short"
    assert quality_problem("| 12 | 34 | 56 | 78 |", 5, 0.5) == "non_letter"
    assert quality_problem("A perfectly normal sentence.", 5, 0.5) is None


def test_dedup_and_split_are_deterministic() -> None:
    assert content_hash("Hello   World") == content_hash("hello world")
    near = NearDuplicateFilter(threshold=0.7)
    base = "the quick brown fox jumps over the lazy dog near the river bank at dawn today"
    assert not near.seen(base)
    assert near.seen(base.replace("today", "again"))
    assert not near.seen("an entirely different sentence about electric bicycles and batteries")
    keys = [content_hash(str(i)) for i in range(2000)]
    picked = [is_validation(k, 0.1) for k in keys]
    assert picked == [is_validation(k, 0.1) for k in keys]
    assert 120 < sum(picked) < 280


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_pdf_docx_and_parquet(tmp_path: Path) -> None:
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(_minimal_pdf("Electric bicycles need care."))
    assert [r["text"] for r in read_file(pdf)] == ["Electric bicycles need care."]

    import docx

    document = docx.Document()
    document.add_heading("Care", level=1)
    document.add_paragraph("First.")
    document.add_paragraph("Second.")
    document.save(str(tmp_path / "b.docx"))
    assert [r["text"] for r in read_file(tmp_path / "b.docx")] == ["# Care", "First.", "Second."]

    parquet = tmp_path / "c.parquet"
    parquet.write_bytes(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"c\.parquet: reading parquet needs pyarrow"):
            read_file(parquet)
