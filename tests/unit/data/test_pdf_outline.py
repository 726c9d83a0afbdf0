"""PDF headings come back from the outline: bookmarked lines become ``#`` heading lines."""

from __future__ import annotations

from pathlib import Path

from pypdf import PdfReader, PdfWriter

from llmeco.data.documents import pdf_text
from llmeco.rag.chunk import chunk_text


def _pdf(path: Path, pages: list[list[str]]) -> None:
    """A minimal PDF: one page per list, each string a line of its text layer."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids: list[str] = []
    font = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        page_id, content_id = 3 + 2 * i, 4 + 2 * i
        kids.append(f"{page_id} 0 R")
        shown = " 0 -16 Td ".join(f"({line}) Tj" for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td {shown} ET".encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content_id, font)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
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


def _with_outline(src: Path, dst: Path, entries: list[tuple[str, int, int]]) -> None:
    """Copy ``src`` with outline entries (title, page index, level 1 or 2) added."""
    writer = PdfWriter(clone_from=PdfReader(str(src)))
    parent = None
    for title, page, level in entries:
        item = writer.add_outline_item(
            title=title, page_number=page, parent=parent if level == 2 else None
        )
        if level == 1:
            parent = item
    with dst.open("wb") as fh:
        writer.write(fh)


def test_outline_titles_become_headings_at_their_level(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pdf"
    _pdf(
        plain,
        [
            ["Staff policy", "4 Annual leave", "4.1 Entitlement", "Staff get 27 days of leave."],
            ["4.2 Carry-over", "Up to 5 days may be carried over.", "Annual leave"],
        ],
    )
    marked = tmp_path / "marked.pdf"
    _with_outline(
        plain,
        marked,
        [
            ("4 Annual leave", 0, 1),
            ("4.1 Entitlement", 0, 2),
            ("4.2 Carry-over", 1, 2),
            ("5 Sickness", 1, 1),  # its line is not on the page: no heading invented
        ],
    )
    text = pdf_text(marked)
    assert text.splitlines() == [
        "Staff policy",
        "# 4 Annual leave",
        "## 4.1 Entitlement",
        "Staff get 27 days of leave.",
        "",
        "## 4.2 Carry-over",
        "Up to 5 days may be carried over.",
        "Annual leave",
    ]
    sections = {c.section for c in chunk_text(text)}
    assert sections == {"", "4 Annual leave > 4.1 Entitlement", "4 Annual leave > 4.2 Carry-over"}


def test_pdf_without_outline_is_left_as_text(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pdf"
    _pdf(plain, [["4 Annual leave", "Staff get 27 days of leave."]])
    assert pdf_text(plain) == "4 Annual leave\nStaff get 27 days of leave."
