"""``llmeco backup``: create → verify → restore a SQLite home, and every refusal naming why."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from backup_helpers import PASSPHRASE, QUERY, Source, cli

from llmeco.apps.conversations import ConversationLog
from llmeco.backup.manifest import FileRecord, Manifest, verify_backup
from llmeco.errors import InvalidRequest, UnsafeFile
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.checkpoint import Signer
from llmeco.governance.audit.verify import verify_ledger
from llmeco.governance.crypto import Cipher
from llmeco.governance.keys import KeyStore
from llmeco.rag.kb import KnowledgeBase
from llmeco.registry import Registry
from llmeco.registry.checkout import checkout
from llmeco.settings import Settings
from llmeco.store import Store

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder


def copy_backup(source: Source, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(source.backup, dest)
    for path in dest.rglob("*"):  # blobs are copied read-only
        if path.is_file():
            os.chmod(path, 0o644)
    return dest


def blob_of(backup: Path) -> str:
    manifest = Manifest.read(backup)
    blobs = [f for f in manifest.files if f.path.startswith("home/artifacts/sha256/")]
    return max(blobs, key=lambda f: f.size).path  # the weights


def test_manifest_round_trip_and_unsafe_paths(tmp_path: Path) -> None:
    m = Manifest(
        llmeco_version="0.1.0",
        created_at="2026-01-01T00:00:00.000Z",
        store={"kind": "sqlite", "file": "store/llmeco.db", "schema_revisions": ["0007"]},
        ledger={"head_seq": 3, "head_hash": "ab" * 32, "checkpoint": None},
        keys={"included": False, "file": None, "names": []},
        not_included=["models/"],
        files=[FileRecord("home/a/b", 1, "1" * 64), FileRecord("store/llmeco.db", 10, "0" * 64)],
    )
    m.write(tmp_path)
    assert Manifest.read(tmp_path) == m
    assert Manifest.read(tmp_path).total_bytes == 11
    data = m.to_dict()
    data["files"][0]["path"] = "../../etc/passwd"
    with pytest.raises(UnsafeFile, match="etc/passwd"):
        Manifest.from_dict(data)
    with pytest.raises(InvalidRequest, match="not an llmeco-backup manifest"):
        Manifest.from_dict({**m.to_dict(), "format": "zip"})
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InvalidRequest, match="corrupted"):
        Manifest.read(tmp_path)


def test_backup_holds_store_artifacts_keys_not_cache(source: Source) -> None:
    m = Manifest.read(source.backup)
    paths = {f.path for f in m.files}
    assert "store/llmeco.db" in paths and "keys.sealed" in paths
    assert "home/agents/helper.yaml" in paths
    assert any(p.startswith("home/artifacts/sha256/") for p in paths)
    assert not any(p.startswith(("home/models/", "home/keys/", "home/registry/")) for p in paths)
    assert m.store["kind"] == "sqlite" and m.store["schema_revisions"]
    assert m.store["tables"]["kb_chunks"] > 0 and m.store["tables"]["registry_versions"] == 1
    assert m.keys == {
        "included": True,
        "file": "keys.sealed",
        "names": ["api-key-secret", "audit-signing.key", "encryption.key"],
    }
    assert m.ledger["checkpoint"]["size"] <= m.ledger["head_seq"] == source.head_seq
    sealed = (source.backup / "keys.sealed").read_bytes()
    for name in ("encryption.key", "audit-signing.key"):  # the key bytes are not readable
        assert (source.home / "keys" / name).read_text().strip().encode() not in sealed
    assert not list(source.backup.parent.glob(".backup.partial-*"))


def test_restore_into_fresh_home_verifies_everywhere(
    source: Source, tmp_path: Path, embedder: Embedder
) -> None:
    home = tmp_path / "restored"
    code, out = cli(
        "backup", "restore", str(source.backup), "--home", str(home),
        "--passphrase-env", "BK_PASS", BK_PASS=PASSPHRASE,
    )  # fmt: skip
    assert code == 0, out
    assert "api-key-secret, audit-signing.key, encryption.key" in out
    for name in ("encryption.key", "audit-signing.key", "api-key-secret"):
        path = home / "keys" / name
        assert path.read_bytes() == (source.home / "keys" / name).read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    settings = Settings(home=home)
    store = Store.from_settings(settings)
    key = Signer.from_settings(settings).public_key
    assert key == Signer.from_settings(Settings(home=source.home)).public_key
    anchor = json.loads(source.anchor.read_text())
    report = verify_ledger(store, key)
    assert report.ok and report.entries == source.head_seq, report.to_dict()
    code, out = cli("audit", "verify", "--checkpoint", str(source.anchor), home=home)
    assert code == 0 and "intact" in out, out
    assert anchor["size"] <= source.head_seq

    version, _view = checkout(Registry(store, home), "tiny:1")
    assert len(version.files) == 3
    code, out = cli("models", "verify", "tiny:1", home=home)
    assert code == 0 and "3 files verified" in out, out

    kb = KnowledgeBase.open(store, "acme", embedder)
    assert [(h.doc, h.start, h.end) for h in kb.search(QUERY, 3)] == source.hits
    assert KeyStore.from_settings(settings, store).authenticate(source.api_token).name
    history = ConversationLog(store, Cipher.from_settings(settings)).history("s-1")
    assert [m["content"] for m in history] == [QUERY, "Refunds take five days."]
    assert (home / "agents" / "helper.yaml").read_text() == "name: helper\n"
    assert not (home / "models").exists()
    store.close()


@pytest.mark.parametrize("damage", ["corrupt", "missing", "extra"])
def test_verify_and_restore_refuse_a_damaged_backup_naming_the_file(
    source: Source, tmp_path: Path, damage: str
) -> None:
    backup = copy_backup(source, tmp_path)
    blob = blob_of(backup)
    if damage == "corrupt":
        data = bytearray((backup / blob).read_bytes())
        data[100] ^= 1
        (backup / blob).write_bytes(bytes(data))
        named = f"corrupted: {blob}"
    elif damage == "missing":
        (backup / blob).unlink()
        named = f"missing: {blob}"
    else:
        blob = "home/agents/intruder.yaml"
        (backup / blob).write_text("name: intruder\n")
        named = f"not in the manifest: {blob}"

    code, out = cli("backup", "verify", str(backup))
    flat = " ".join(out.split())
    assert code == 2 and named in flat, out
    with pytest.raises(UnsafeFile, match="damaged"):
        verify_backup(backup)

    home = tmp_path / "home"
    code, out = cli(
        "backup", "restore", str(backup), "--home", str(home),
        "--passphrase-env", "BK_PASS", BK_PASS=PASSPHRASE,
    )  # fmt: skip
    assert code == 2 and named in " ".join(out.split()), out
    assert not home.exists()  # refused before anything was written


def test_verify_ok_and_json(source: Source) -> None:
    code, out = cli("backup", "verify", str(source.backup))
    assert code == 0 and "verified" in out, out
    code, out = cli("backup", "verify", str(source.backup), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["ledger"]["head_seq"] == source.head_seq


def test_restore_refuses_non_empty_home_without_force(source: Source, tmp_path: Path) -> None:
    home = tmp_path / "busy"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    args = ["backup", "restore", str(source.backup), "--home", str(home)]
    args += ["--passphrase-env", "BK_PASS"]
    code, out = cli(*args, BK_PASS=PASSPHRASE)
    assert code == 2 and "is not empty" in out and "--force" in out, out
    assert not (home / "llmeco.db").exists()

    code, out = cli(*args, "--force", BK_PASS=PASSPHRASE)
    assert code == 0, out
    store = Store.from_settings(Settings(home=home))
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.max(t.entries.c.seq))) == source.head_seq
    store.close()
    assert (home / "notes.txt").read_text() == "mine"  # --force overwrites, never wipes


def test_wrong_or_missing_passphrase_is_refused_clearly(source: Source, tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = ["backup", "restore", str(source.backup), "--home", str(home)]
    code, out = cli(*base, "--passphrase-env", "BK_PASS", BK_PASS="not the passphrase")
    assert code == 2 and "wrong passphrase" in out, out
    code, out = cli(*base)
    assert code == 2 and "holds sealed keys" in out and "--passphrase-env" in out, out
    code, out = cli(*base, "--passphrase-env", "BK_UNSET_VAR")
    assert code == 2 and "$BK_UNSET_VAR" in out and "empty or unset" in out, out
    assert not home.exists()


def test_keys_seal_unseal(tmp_path: Path) -> None:
    from llmeco.backup.keys import seal, unseal
    from llmeco.errors import ConfigError

    files = {"encryption.key": b"secret-one\n", "audit-signing.key": b"ab" * 32}
    blob = seal(files, "a long passphrase")
    assert b"secret-one" not in blob
    assert unseal(blob, "a long passphrase") == files
    with pytest.raises(ConfigError, match="wrong passphrase"):
        unseal(blob, "a long passphrasf")
    tampered = json.loads(blob)
    tampered["ciphertext"] = "A" + tampered["ciphertext"][1:]
    with pytest.raises(ConfigError, match="wrong passphrase"):
        unseal(json.dumps(tampered).encode(), "a long passphrase")
    with pytest.raises(InvalidRequest, match="not an llmeco sealed-keys"):
        unseal(b'{"format": "other"}', "a long passphrase")


def test_backup_without_keys_warns_and_restore_says_what_to_copy(
    source: Source, tmp_path: Path
) -> None:
    out_dir = tmp_path / "nokeys"
    code, out = cli("backup", "create", str(out_dir), home=source.home)
    flat = " ".join(out.split())
    assert code == 0 and "keys are NOT in this backup" in flat, out
    assert "keys.sealed" not in {f.path for f in Manifest.read(out_dir).files}
    home = tmp_path / "home"
    code, out = cli("backup", "restore", str(out_dir), "--home", str(home))
    assert code == 0 and "the backup holds no keys" in " ".join(out.split()), out
    assert not (home / "keys").exists()


def test_create_refuses_existing_out_and_leaves_nothing_half_written(
    source: Source, tmp_path: Path
) -> None:
    code, out = cli("backup", "create", str(source.backup), home=source.home)
    assert code == 2 and "already exists" in out, out

    home = tmp_path / "home"
    shutil.copytree(source.home, home, symlinks=True)
    blob = next((home / "artifacts" / "sha256").rglob("*"))
    while blob.is_dir():
        blob = next(blob.iterdir())
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    out_dir = tmp_path / "bad"
    code, out = cli("backup", "create", str(out_dir), home=home)
    assert code == 2 and blob.name in out and "damaged" in out, out
    assert not out_dir.exists() and not list(tmp_path.glob(".bad.partial-*"))


def test_include_keys_needs_a_passphrase(source: Source, tmp_path: Path) -> None:
    code, out = cli("backup", "create", str(tmp_path / "b"), "--include-keys", home=source.home)
    assert code == 2 and "--passphrase-env" in out, out
    code, out = cli(
        "backup", "create", str(tmp_path / "b"), "--include-keys", "--passphrase-env", "P",
        home=source.home, P="short",
    )  # fmt: skip
    assert code == 2 and "at least 8" in out, out
    assert not (tmp_path / "b").exists()


def test_a_backup_inside_the_home_does_not_copy_itself(source: Source, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(source.home, home, symlinks=True)
    for n in (1, 2):
        code, out = cli("backup", "create", str(home / "backups" / f"b{n}"), home=home)
        assert code == 0, out
    paths = {f.path for f in Manifest.read(home / "backups" / "b2").files}
    assert not any(p.startswith("home/backups/") for p in paths)  # backups never nest
    assert "home/agents/helper.yaml" in paths
