"""The support desk a server runs: knowledge bases, the embedder, gates and the conversation
log. It speaks in the library's typed errors (:class:`~llmeco.errors.NotFound`), which the
server maps to HTTP responses at its edge."""

from __future__ import annotations

import threading

from llmeco.apps.answerability import Gate, default_gate
from llmeco.apps.conversations import ConversationLog
from llmeco.apps.support.cache import CachedEmbeddings
from llmeco.apps.support.calibration import GateStore
from llmeco.apps.support.protocols import Embeds
from llmeco.errors import NotFound
from llmeco.rag.embed import Embedder
from llmeco.rag.kb import KnowledgeBase, list_knowledge_bases
from llmeco.store import Store

#: Model names of the support assistant: ``support:<knowledge base>``.
PREFIX = "support:"


class SupportDesk:
    """Opens knowledge bases by name (cached) and logs conversations, hand-offs, feedback."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        log: ConversationLog,
        *,
        model: str | None = None,
        company: str = "our company",
    ) -> None:
        """A desk over the knowledge bases and gates of ``store``, embedding with
        ``embedder`` and logging to ``log``; answers are written by the served ``model``
        (None: the server's first) on behalf of ``company``."""
        self.store = store
        self.embedder = embedder
        self.log = log
        #: Served model that writes the answers (None: the server's first model).
        self.model = model
        self.company = company
        self._kbs: dict[str, KnowledgeBase] = {}
        self._lock = threading.Lock()
        self._gates = GateStore(store)
        self._cached = CachedEmbeddings(embedder)

    @property
    def sentence_embedder(self) -> Embeds:
        """The embedder as the assistant uses it: remembering the passages of recent turns."""
        return self._cached

    def knowledge_base(self, name: str) -> KnowledgeBase:
        """The named knowledge base (opened once, then cached while it exists: one deleted
        and re-created under the same name, over HTTP or by the CLI, is opened again).

        Raises:
            NotFound: no knowledge base has that name (``param="model"``, since clients
                name it in the ``support:<name>`` model).
        """
        with self._lock:
            kb = self._kbs.get(name)
            if kb is not None and not kb.exists():
                del self._kbs[name]
                kb = None
            if kb is None:
                try:
                    kb = KnowledgeBase.open(self.store, name, self.embedder)
                except NotFound:
                    raise NotFound(
                        f"The model `{PREFIX}{name}` does not exist: there is no knowledge base "
                        f"named {name!r} (create one with `llmeco kb create {name}`).",
                        param="model",
                    ) from None
                self._kbs[name] = kb
            return kb

    def gate(self, name: str) -> Gate:
        """The answerability gate of knowledge base ``name``: the one ``llmeco kb calibrate``
        stored, else the default (read on every turn, so a new calibration applies at once)."""
        return self._gates.get(name) or default_gate()

    def model_names(self) -> list[str]:
        """``support:<name>`` for every knowledge base in the store."""
        return [PREFIX + info.name for info in list_knowledge_bases(self.store)]
