"""Registering versions: immutable, monotonic, content-addressed, lineage; on SQLite and PG."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from reg_helpers import make_model_dir

from llmeco.errors import ConfigError, InvalidRequest, NotFound, UnsafeFile
from llmeco.registry import Registry


def test_versions_are_numbered_and_files_copied_by_content(
    registry: Registry, tmp_path: Path
) -> None:
    src = make_model_dir(tmp_path / "m")
    (src / "training.json").write_text(
        json.dumps({"origin": "default", "data_manifest_sha256": "ab"})
    )
    v1 = registry.register(src, "support", actor="alice", description="first")
    v2 = registry.register(src, "support", actor="bob")
    assert (v1.version, v2.version) == (1, 2) and v1.ref == "support:1"
    assert v1.lineage == {"origin": "default", "data_manifest_sha256": "ab"}
    assert v1.config == {"model_type": "llama", "hidden_size": 64}
    weights = next(f for f in v1.files if f.path == "model.safetensors")
    blob = registry.artifacts.blob_path(weights.sha256)
    assert blob.read_bytes() == b"weights-v1"
    assert not os.stat(blob).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # read-only
    assert [f.sha256 for f in v1.files] == [f.sha256 for f in v2.files]  # deduplicated blobs
    # the version does not change when its source directory does
    (src / "model.safetensors").write_bytes(b"changed")
    again = registry.get("support", 1)
    assert again.files == v1.files and again.created_by == "alice"
    assert registry.get("support").version == 2  # latest


def test_training_outputs_leave_checkpoints_and_logs_out(
    registry: Registry, tmp_path: Path
) -> None:
    src = make_model_dir(tmp_path / "run")
    (src / "checkpoints" / "step-000010").mkdir(parents=True)
    (src / "checkpoints" / "step-000010" / "state.safetensors").write_bytes(b"x")
    (src / "tensorboard").mkdir()
    (src / "tensorboard" / "events").write_bytes(b"x")
    (src / "adapter").mkdir()
    (src / "adapter" / "adapter_model.safetensors").write_bytes(b"lora")
    v = registry.register(src, "m", actor="t")
    assert [f.path for f in v.files] == [
        "adapter/adapter_model.safetensors",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]


def test_register_refuses_pickles_escaping_links_and_non_models(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    reg = sqlite_registry
    src = make_model_dir(tmp_path / "pickled")
    (src / "optimizer.pt").write_bytes(b"x")
    with pytest.raises(UnsafeFile, match=r"optimizer\.pt"):
        reg.register(src, "m", actor="t")
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    linked = make_model_dir(tmp_path / "linked")
    (linked / "notes.txt").symlink_to(secret)
    with pytest.raises(UnsafeFile, match="links outside"):
        reg.register(linked, "m", actor="t")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"config\.json"):
        reg.register(empty, "m", actor="t")
    with pytest.raises(NotFound):
        reg.register(tmp_path / "nowhere", "m", actor="t")
    for bad in ("../x", "a/b", "", "-x", "x" * 129):
        with pytest.raises(InvalidRequest):
            reg.register(make_model_dir(tmp_path / "ok"), bad, actor="t")
    with pytest.raises(NotFound, match="no model named 'm'"):
        reg.get("m")


def test_concurrent_registrations_get_distinct_increasing_numbers(
    registry: Registry, tmp_path: Path
) -> None:
    srcs = [make_model_dir(tmp_path / f"m{i}", weights=f"w{i}".encode()) for i in range(6)]
    registry.register(srcs[0], "m", actor="t")  # the model row exists; now race on versions
    numbers: list[int] = []
    errors: list[BaseException] = []

    def work(src: Path) -> None:
        try:
            numbers.append(registry.register(src, "m", actor="t").version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in srcs[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(numbers) == [2, 3, 4, 5, 6]
    assert [v.version for v in registry.versions("m")] == [1, 2, 3, 4, 5, 6]
