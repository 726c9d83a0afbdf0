"""Loading registered versions: sha256 verified, corrupted files refused by name, paths confined."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from reg_helpers import eval_results, make_model_dir
from sqlalchemy import update

from llmeco.errors import NotFound, UnsafeFile
from llmeco.registry import Registry
from llmeco.registry import tables as t
from llmeco.registry.artifacts import safe_relpath
from llmeco.registry.checkout import checkout, resolve_local
from llmeco.registry.compare import diff_versions
from llmeco.registry.refs import parse_ref
from llmeco.settings import Settings


def test_checkout_links_verified_blobs_into_a_model_directory(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    reg = sqlite_registry
    reg.register(make_model_dir(tmp_path / "m"), "sup", actor="t")
    _version, path = checkout(reg, "sup:1")
    assert path == reg.views / "sup" / "1"
    assert (path / "model.safetensors").read_bytes() == b"weights-v1"
    # a view someone tampered with is rebuilt from the blobs
    (path / "config.json").unlink()
    (path / "config.json").write_text("{}")
    _, again = checkout(reg, "sup:1")
    assert json.loads((again / "config.json").read_text()) == {
        "model_type": "llama",
        "hidden_size": 64,
    }


def test_resolve_local_checks_out_registry_references_only(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    """The resolver the layers above hand to ``modeling.load.resolve_model``."""
    reg = sqlite_registry
    reg.register(make_model_dir(tmp_path / "m"), "sup", actor="t")
    reg.set_alias("sup", 1, "staging", actor="t")
    settings = Settings(home=reg.home)
    assert resolve_local("sup@staging", settings) == ("sup:1", reg.views / "sup" / "1")
    assert resolve_local("sup:1", settings) == ("sup:1", reg.views / "sup" / "1")
    assert resolve_local(str(tmp_path / "m"), settings) is None
    assert resolve_local("default", settings) is None
    with pytest.raises(NotFound, match="no alias 'production'"):
        resolve_local("sup@production", settings)


def test_a_corrupted_blob_is_refused_naming_the_file(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    """Must-show 5 at the library level (the integration test loads through load.py too)."""
    reg = sqlite_registry
    v = reg.register(make_model_dir(tmp_path / "m"), "sup", actor="t")
    blob = reg.artifacts.blob_path(next(f.sha256 for f in v.files if f.path == "model.safetensors"))
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[3] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(UnsafeFile, match=r"sup:1/model\.safetensors"):
        checkout(reg, "sup:1")
    blob.unlink()
    with pytest.raises(NotFound, match=r"sup:1/model\.safetensors"):
        checkout(reg, "sup:1")
    # registering a good copy again heals the store
    reg.register(make_model_dir(tmp_path / "m"), "sup", actor="t")
    checkout(reg, "sup:1")


def test_a_tampered_manifest_cannot_escape_the_view(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    reg = sqlite_registry
    reg.register(make_model_dir(tmp_path / "m"), "sup", actor="t")
    with reg.store.session() as s:
        s.execute(
            update(t.FileRow).where(t.FileRow.path == "config.json").values(path="../../evil")
        )
    with pytest.raises(UnsafeFile, match="evil"):
        checkout(reg, "sup:1")
    assert not (reg.views / "evil").exists() and not (reg.home / "evil").exists()
    with reg.store.session() as s:
        s.execute(update(t.FileRow).where(t.FileRow.path == "../../evil").values(sha256="../x"))
    with pytest.raises(UnsafeFile):
        checkout(reg, "sup:1")


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../x", "a/../../x", "a\\b", "", "a//b", "./a", "C:x"]
)
def test_safe_relpath_rejects_anything_that_could_leave_its_directory(bad: str) -> None:
    with pytest.raises(UnsafeFile):
        safe_relpath(bad)


def test_refs_parse_only_registry_spellings() -> None:
    assert parse_ref("support@production") is not None
    ref = parse_ref("support:12")
    assert ref is not None and (ref.name, ref.version, str(ref)) == ("support", 12, "support:12")
    for other in ("default", "support:handbook", "runs/sft", "./m@x", "a@", "a:1:2", "C:\\m"):
        assert parse_ref(other) is None, other


def test_diff_reports_config_lineage_files_and_metric_deltas(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    reg = sqlite_registry
    a = make_model_dir(tmp_path / "a", config={"hidden_size": 64, "rope": {"theta": 1}})
    (a / "training.json").write_text(json.dumps({"config": {"lr": 1e-4}, "origin": "default"}))
    b = make_model_dir(
        tmp_path / "b", weights=b"w2", config={"hidden_size": 64, "rope": {"theta": 2}}, extra="x"
    )
    (b / "training.json").write_text(json.dumps({"config": {"lr": 2e-4}, "origin": "default"}))
    reg.register(a, "sup", actor="t")
    reg.register(b, "sup", actor="t")
    reg.attach_eval("sup", 1, eval_results("s", {"mc": {"acc": 0.5}, "ppl": {"perplexity": 9.0}}))
    reg.attach_eval("sup", 2, eval_results("s", {"mc": {"acc": 0.75}, "ppl": {"perplexity": 10.0}}))
    d = diff_versions(reg, reg.get("sup", 1), reg.get("sup", 2))
    assert d.config == [("rope.theta", 1, 2)]
    assert d.lineage == [("config.lr", 1e-4, 2e-4)]
    assert d.files_added == ["extra"] and not d.files_removed
    assert d.files_changed == ["config.json", "model.safetensors", "training.json"]
    metrics = {(m.suite, m.metric): m for m in d.metrics}
    assert metrics[("s", "mc.acc")].delta == 0.25 and metrics[("s", "mc.acc")].improved
    assert metrics[("s", "ppl.perplexity")].improved is False
    assert json.dumps(d.as_dict())
