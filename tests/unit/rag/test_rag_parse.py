"""Reading files for a knowledge base: headings survive HTML and .docx; errors name the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeco.errors import ConfigError, NotFound
from llmeco.rag.chunk import chunk_text
from llmeco.rag.parse import expand_paths, markdown_tables, read_document


def _pdf(path: Path, text: str) -> None:
    """A minimal one-page PDF with ``text`` in its text layer."""
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
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))


def test_html_headings_become_markdown(tmp_path: Path) -> None:
    page = tmp_path / "faq.html"
    page.write_text(
        "<html><head><title>t</title><script>x=1</script></head><body><nav>menu</nav>"
        "<h1>FAQ</h1><h2>Rain?</h2><p>Yes, <b>sealed</b>\n against rain.</p>"
        "<footer>(c)</footer></body></html>"
    )
    doc = read_document(page)
    assert doc.text == "# FAQ\n\n## Rain?\n\nYes, sealed against rain."
    [chunk] = chunk_text(doc.text)
    assert chunk.section == "FAQ > Rain?"


def test_docx_heading_styles_and_tables(tmp_path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Handbook", level=1)
    d.add_heading("Returns", level=2)
    d.add_paragraph("Return within thirty days.")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Express"
    table.rows[0].cells[1].text = "15 euros"
    path = tmp_path / "h.docx"
    d.save(str(path))
    doc = read_document(path)
    assert (
        doc.text == "# Handbook\n\n## Returns\n\nReturn within thirty days.\n\nExpress | 15 euros"
    )
    assert chunk_text(doc.text)[0].section == "Handbook > Returns"


def test_pdf_text_layer(tmp_path: Path) -> None:
    path = tmp_path / "policy.pdf"
    _pdf(path, "Refunds take ten working days.")
    assert "Refunds take ten working days." in read_document(path).text


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.docx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"broken\.docx"):
        read_document(bad)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.txt: not UTF-8"):
        read_document(latin)
    sheet = tmp_path / "prices.xlsx"
    sheet.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"prices\.xlsx: unsupported format"):
        read_document(sheet)
    empty = tmp_path / "empty.md"
    empty.write_text("  \n")
    with pytest.raises(ConfigError, match=r"empty\.md: no text"):
        read_document(empty)


def test_expand_paths_names_files_relative_to_their_folder(tmp_path: Path) -> None:
    (tmp_path / "kb" / "guides").mkdir(parents=True)
    (tmp_path / "kb" / "a.md").write_text("a")
    (tmp_path / "kb" / "guides" / "b.txt").write_text("b")
    (tmp_path / "kb" / "notes.yaml").write_text("skipped")
    (tmp_path / "kb" / ".hidden.md").write_text("skipped")
    single = tmp_path / "single.html"
    single.write_text("<p>x</p>")
    names = [n for _, n in expand_paths([tmp_path / "kb", single])]
    assert names == ["a.md", "guides/b.txt", "single.html"]
    with pytest.raises(NotFound, match="missing"):
        expand_paths([tmp_path / "missing"])
    # the same bytes hash the same; different bytes do not
    one, two = read_document(tmp_path / "kb" / "a.md"), read_document(single)
    assert one.content_hash != two.content_hash
    assert read_document(tmp_path / "kb" / "a.md").content_hash == one.content_hash


def test_html_table_rows_name_their_cells_by_column(tmp_path: Path) -> None:
    page = tmp_path / "hours.html"
    page.write_text(
        "<h2>Opening hours</h2><p>The usual week.</p>"
        "<table><caption>Weekly hours</caption>"
        "<tr><th>Day</th><th>Doors</th><th>Blood test room</th></tr>"
        "<tr><td>Monday</td><td>07:30 to 18:30</td><td>07:45 &ndash; 11:30</td></tr>"
        "<tr><td>Thursday</td><td>08:00 to 13:00</td><td></td></tr>"
        "</table><table><tr><td>Fee</td><td>&euro;15</td></tr></table><p>After.</p>"
    )
    text = read_document(page).text
    assert "Weekly hours\n\n" in text
    assert "Monday: Doors 07:30 to 18:30; Blood test room 07:45 \u2013 11:30.\n" in text
    assert "Thursday: Doors 08:00 to 13:00.\n" in text  # an empty cell says nothing
    assert "Fee; \u20ac15." in text  # no header row: the cells in order
    assert text.index("Opening hours") < text.index("Monday") < text.index("After.")


def test_markdown_table_rows_are_named_by_their_column_headers() -> None:
    text = (
        "Rate limits:\n\n"
        "| Plan | Requests per minute | Requests per day |\n"
        "|---|:---:|---|\n"
        "| Team | 300 | 100,000 |\n"
        "| Enterprise | 3,000 | |\n"
        "\nBursts are allowed."
    )
    assert markdown_tables(text).splitlines() == [
        "Rate limits:",
        "",
        "Team: Requests per minute 300; Requests per day 100,000.",
        "Enterprise: Requests per minute 3,000.",
        "",
        "Bursts are allowed.",
    ]
    # pipes without a rule under the first row are not a table
    assert markdown_tables("| a | b |\n| c | d |") == "| a | b |\n| c | d |"
