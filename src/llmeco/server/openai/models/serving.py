"""What ``/v1/models`` lists: each engine's model, the embedding model, trained classifiers,
then what each chat backend serves (the support assistant's knowledge bases, …)."""

from __future__ import annotations

from typing import Literal

from llmeco.errors import NotFound
from llmeco.server.openai.models.protocol import ModelCard, ModelList
from llmeco.server.state import ServerState, request_guard


class OpenAIServingModels:
    """Describes the served models."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def list(self) -> ModelList:
        """Every served model the caller's key may use, generation models first."""
        cards = [
            ModelCard(
                id=name,
                created=e.model_info.created,
                max_model_len=e.model_info.max_model_len,
                root=e.model_info.source or None,
                version=e.model_info.version or None,
            )
            for name, e in self.state.engines.items()
            if self.state.visible(name)
        ]
        emb = self.state.embedder
        if emb is not None and self.state.visible(emb.name):
            cards.append(
                ModelCard(
                    id=emb.name,
                    created=self.state.started,
                    max_model_len=emb.max_tokens,
                    task="embed",
                )
            )
        cards += [
            ModelCard(
                id=name,
                created=c.created,
                max_model_len=c.max_length,
                root=c.source or None,
                task="classify",
                labels=c.labels,
            )
            for name, c in self.state.classifiers.items()
            if self.state.visible(name)
        ]
        cards += speech_cards(self.state)
        for backend in self.state.chat_backends.values():
            cards += [c for c in backend.model_cards(self.state) if self.state.visible(c.id)]
        if self.state.gateway is not None:
            gateway_cards = self.state.gateway.model_cards(self.state)
            cards += [c for c in gateway_cards if self.state.visible(c.id)]
        return ModelList(data=cards)

    def get(self, model: str) -> ModelCard:
        """One model by name or alias; 404 when unknown."""
        name = self.state.aliases.get(model, model)
        if self.state.speech is not None:
            name = self.state.speech.aliases.get(name, name)
        if self.state.embedder is not None and model in self.state.embedder_names():
            name = self.state.embedder.name
        served = (*self.state.engines, *self.state.embedder_names(), *self.state.classifiers)
        if self.state.gateway is not None:
            served += tuple(self.state.gateway.upstreams.names())
        if name in served:
            self.state.check_model(name)  # 403 for a model the key may not use
        for card in self.list().data:
            if card.id == name:
                return card
        raise NotFound(f"The model `{model}` does not exist.", param="model")


def speech_cards(state: ServerState) -> list[ModelCard]:
    """The speech models (``task`` transcribe or speech) the caller's key may use."""
    speech = state.speech
    if speech is None:
        return []
    guard = request_guard.get()
    kinds: list[tuple[str, Literal["transcribe", "speech"], int]] = [
        (n, "transcribe", 448) for n in speech.recognizers
    ]
    kinds += [(n, "speech", s.max_input) for n, s in speech.synthesizers.items()]
    return [
        ModelCard(id=name, created=state.started, max_model_len=size, task=task)
        for name, task, size in kinds
        if guard is None or guard.allows_model(speech.names_of(name))
    ]
