"""Shared by the knowledge-base and audit route tests: a bag-of-words embedder, an app with
auth, a support desk over a real store (one KB, ``acme``) and a ledger."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fake_engine import FakeEngine
from fastapi import FastAPI

from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.desk import SupportDesk
from llmeco.governance.audit import AuditLedger
from llmeco.governance.crypto import Cipher
from llmeco.governance.keys import ApiKey
from llmeco.governance.scopes import SCOPES, Grant
from llmeco.rag.kb import KnowledgeBase
from llmeco.server import build_app
from llmeco.server.auth import Authenticator
from llmeco.settings import Settings
from llmeco.store import Store

HANDBOOK = """# Acme handbook

## Refunds

Refunds are paid to the original card within five business days after we receive the
returned item.

## Opening hours

Our shop is open from nine in the morning to six in the evening, Monday to Saturday.
"""


class HashEmbedder:
    """Bag-of-words vectors (each lower-cased word adds 1 to a hashed dimension)."""

    name = "hash-embedder"
    aliases: tuple[str, ...] = ()
    dimensions = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % 64] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out

    def close(self) -> None:
        pass


@dataclass
class Served:
    """An app and what it was built over."""

    app: FastAPI
    auth: Authenticator
    ledger: AuditLedger
    store: Store
    root: str
    root_id: str


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def key(
    served: Served, scopes: Sequence[str] = SCOPES, models: Sequence[str] = (), name: str = "k"
) -> tuple[ApiKey, str]:
    """A key made directly in the store (as the operator)."""
    grant = Grant(scopes=frozenset(scopes), models=frozenset(models))
    return served.auth.keys.create(name, grant)


def serve(settings: Settings, *, kb: bool = True) -> Served:
    """The real app with auth and a ledger over the fake engine; with ``kb``, a support desk
    (and the embedder) over the settings' store holding the KB ``acme``."""
    fake = FakeEngine()
    store = Store.from_settings(settings)
    auth = Authenticator.open(settings)
    ledger = AuditLedger.open(settings)
    embedder = HashEmbedder()
    desk = None
    if kb:
        KnowledgeBase.create(store, "acme", embedder).add_text("handbook.md", HANDBOOK)
        desk = SupportDesk(store, embedder, ConversationLog(store, Cipher([b"k" * 32])))  # type: ignore[arg-type]
    app = build_app(
        settings,
        {fake.name: fake},
        embedder if kb else None,  # type: ignore[arg-type]
        aliases={"default": fake.name},
        auth=auth,
        ledger=ledger,
        support=desk,
    )
    root_key, root = auth.keys.create("root", Grant(scopes=frozenset(SCOPES), models=frozenset()))
    return Served(app, auth, ledger, store, root, root_key.id)
