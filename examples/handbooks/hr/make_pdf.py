"""Build ``policy.pdf`` from ``policy.md`` (dev tool; needs ``fpdf2``, which only this script uses).

The PDF is what the evaluation reads (``llmeco kb add KB examples/handbooks/hr/policy.pdf``);
the Markdown is its source, kept so the policy can be edited and the PDF rebuilt::

    .venv/bin/python examples/handbooks/hr/make_pdf.py

Headings (``#``, ``##``, ``###``) are printed in bold on a line of their own and written to the
PDF's outline (bookmarks) with their level, which is how a reader can tell a heading from body
text: PDFs have no heading markup in their text layer. A clause is never split over two pages
(a page footer would land inside it), and the creation date is fixed, so rebuilding an
unchanged source gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parent
SIZES = {1: 16.0, 2: 13.0, 3: 11.0}  # heading level -> font size (pt)
BODY_SIZE, LINE_MM = 10.0, 5.0
FOOTER = "Kestrel Bay Engineering Ltd - HR-POL-07 staff policy, version 3.2"


class PolicyPdf(FPDF):
    """A4 pages with the policy reference and page number in the footer."""

    def footer(self) -> None:
        """Print the policy reference and page number at the foot of every page."""
        self.set_y(-14)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 5, f"{FOOTER} - page {self.page_no()}", align="C")


def blocks(markdown: str) -> list[tuple[str, str]]:
    """(kind, text) per block of the source: ``h1``-``h3``, ``p`` (a paragraph, its lines
    joined) or ``li`` (one list item)."""
    out: list[tuple[str, str]] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(("p", " ".join(para)))
            para.clear()

    for raw in markdown.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("#"):
            flush()
            marks, _, title = line.partition(" ")
            out.append((f"h{len(marks)}", title.strip()))
        elif line.startswith("- "):
            flush()
            out.append(("li", line[2:].strip()))
        else:
            para.append(line)
    flush()
    return out


def render(markdown: str) -> bytes:
    """The PDF of ``markdown``: bold headings that are also outline entries, wrapped body."""
    pdf = PolicyPdf(format="A4")
    pdf.set_creation_date(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    pdf.set_title("Kestrel Bay Engineering staff policy")
    pdf.set_author("Kestrel Bay Engineering Ltd, People Team")
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    bottom = pdf.h - 20
    for kind, text in blocks(markdown):
        if kind.startswith("h"):
            level = int(kind[1])
            if pdf.get_y() + 25 > bottom:  # keep a heading with the text under it
                pdf.add_page()
            pdf.ln(3 if level > 1 else 0)
            pdf.set_font("Helvetica", "B", SIZES[level])
            pdf.start_section(text, level=level - 1)
            pdf.multi_cell(0, SIZES[level] * 0.5, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
            continue
        pdf.set_font("Helvetica", "", BODY_SIZE)
        indent = 6.0 if kind == "li" else 0.0
        body = f"- {text}" if kind == "li" else text
        width = pdf.epw - indent
        lines = pdf.multi_cell(width, LINE_MM, body, dry_run=True, output="LINES")
        assert isinstance(lines, list)  # output="LINES" gives the wrapped lines
        if pdf.get_y() + len(lines) * LINE_MM > bottom:  # never split a clause over pages
            pdf.add_page()
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(width, LINE_MM, body, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1.5 if kind == "p" else 0.5)
    return bytes(pdf.output())


def main(argv: list[str]) -> int:
    """Write ``policy.pdf`` next to ``policy.md`` (or to the path given)."""
    target = Path(argv[1]) if len(argv) > 1 else HERE / "policy.pdf"
    target.write_bytes(render((HERE / "policy.md").read_text(encoding="utf-8")))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
