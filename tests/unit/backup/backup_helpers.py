"""Helpers of the backup tests: a populated SQLite home (ledger with a checkpoint, an API
key, a registered model, a knowledge base, an agent profile) and a backup of it, built once
per module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from llmeco.apps.conversations import ConversationLog
from llmeco.cli.main import app
from llmeco.governance.audit import AuditLedger
from llmeco.governance.crypto import Cipher
from llmeco.governance.keys import KeyStore
from llmeco.rag.kb import KnowledgeBase
from llmeco.registry import Registry
from llmeco.settings import Settings
from llmeco.store import Store

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder

PASSPHRASE = "correct horse battery staple"
QUERY = "How long do refunds take?"


@dataclass
class Source:
    """The home that was backed up, what it held, and the backup (with sealed keys)."""

    home: Path
    backup: Path
    anchor: Path  # a checkpoint exported before the backup
    api_token: str
    hits: list[tuple[str, int, int]]
    head_seq: int


def cli(*args: str, home: Path | None = None, **env: str) -> tuple[int, str]:
    """Run ``llmeco ARGS`` in-process; returns (exit code, stdout + stderr)."""
    full_env = {"LLMECO_HOME": str(home)} if home is not None else {}
    result = CliRunner().invoke(app, list(args), env={**full_env, **env})
    return result.exit_code, result.output  # stdout and stderr, as a terminal shows them


def make_model_dir(path: Path) -> Path:
    """A directory the registry accepts (it never parses the weights)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    (path / "model.safetensors").write_bytes(b"weights" * 5000)
    (path / "tokenizer.json").write_text('{"version": "1.0"}')
    return path


def populate(
    home: Path, embedder: Embedder, handbook: str, tmp: Path
) -> tuple[str, list[tuple[str, int, int]]]:
    """Fill ``home``: 12 ledger entries, an admin key, model ``tiny:1``, KB ``acme``, one
    encrypted support turn, an agent profile and a converted-model cache file."""
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    with AuditLedger.open(settings, store) as ledger:
        for f in [ledger.record_admin("cli", "test.event", {"i": i}) for i in range(12)]:
            f.result(10)
    token = KeyStore.from_settings(settings, store).ensure_first_admin()
    assert token is not None
    registry = Registry(store, home)
    registry.register(make_model_dir(tmp / "model"), "tiny", actor="cli:test")
    kb = KnowledgeBase.create(store, "acme", embedder)
    kb.add_text("handbook.md", handbook)
    hits = [(h.doc, h.start, h.end) for h in kb.search(QUERY, 3)]
    log = ConversationLog(store, Cipher.from_settings(settings))  # encrypted at rest
    log.record_turn("s-1", "acme", QUERY, "Refunds take five days.", "resp-1")
    (home / "agents").mkdir(exist_ok=True)
    (home / "agents" / "helper.yaml").write_text("name: helper\n")
    (home / "models" / "cache").mkdir(parents=True)  # the converted cache: not backed up
    (home / "models" / "cache" / "big.bin").write_bytes(b"x" * 1000)
    store.close()
    return token, hits


@pytest.fixture(scope="module")
def source(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, acme_handbook: str
) -> Iterator[Source]:
    root = tmp_path_factory.mktemp("backup-src")
    home = root / "home"
    token, hits = populate(home, embedder, acme_handbook, root)
    anchor = root / "anchor.json"
    code, out = cli("audit", "checkpoint", "--now", "--export", str(anchor), home=home)
    assert code == 0, out
    backup = root / "backup"
    code, out = cli(
        "backup", "create", str(backup), "--include-keys", "--passphrase-env", "BK_PASS",
        home=home, BK_PASS=PASSPHRASE,
    )  # fmt: skip
    assert code == 0, out
    head = json.loads((backup / "manifest.json").read_text())["ledger"]["head_seq"]
    yield Source(home, backup, anchor, token, hits, head)
