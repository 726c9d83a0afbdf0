"""The template plugin's own tests: its reader, and that llmeco sees what it registers."""

from __future__ import annotations

from pathlib import Path

from llmeco_example import plugin
from llmeco_example.reader import org_to_markdown, read_org


def test_org_headings_become_markdown_and_directives_go(tmp_path: Path) -> None:
    assert org_to_markdown("#+TITLE: x\n* Top\ntext\n** Sub\nmore") == "# Top\ntext\n## Sub\nmore"
    path = tmp_path / "notes.org"
    path.write_text("* Refunds\nWithin 10 days.\n\n* Shipping\nTwo days.\n", encoding="utf-8")
    records = read_org(path)
    assert [r["text"] for r in records] == ["# Refunds\nWithin 10 days.", "# Shipping\nTwo days."]
    assert {r["source"] for r in records} == {"notes.org"}


def test_hooks_return_one_of_each() -> None:
    (reader,) = plugin.register_readers()
    assert reader.suffixes == (".org",)
    (task,) = plugin.register_eval_tasks()
    assert task.name == "preference"
    (app,) = plugin.register_apps()
    assert app.name == "example" and app.scopes[0].scope == "chat"


def test_llmeco_reads_org_files_once_installed(tmp_path: Path) -> None:
    from llmeco.data.readers import read_file
    from llmeco.plugins import Registry, set_registry

    old = set_registry(Registry())  # a fresh registry sees the installed entry point
    try:
        path = tmp_path / "a.org"
        path.write_text("* Title\nBody.\n", encoding="utf-8")
        assert read_file(path) == [{"text": "# Title\nBody.", "source": "a.org"}]
    finally:
        set_registry(old)
