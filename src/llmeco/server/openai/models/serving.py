"""What ``/v1/models`` lists: each engine's model, then the embedding model."""

from __future__ import annotations

from llmeco.errors import NotFound
from llmeco.server.openai.models.protocol import ModelCard, ModelList
from llmeco.server.state import ServerState


class OpenAIServingModels:
    """Describes the served models."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def list(self) -> ModelList:
        """Every served model, generation models first."""
        cards = [
            ModelCard(
                id=name,
                created=e.model_info.created,
                max_model_len=e.model_info.max_model_len,
                root=e.model_info.source or None,
            )
            for name, e in self.state.engines.items()
        ]
        emb = self.state.embedder
        if emb is not None:
            cards.append(
                ModelCard(
                    id=emb.name,
                    created=self.state.started,
                    max_model_len=emb.max_tokens,
                    task="embed",
                )
            )
        return ModelList(data=cards)

    def get(self, model: str) -> ModelCard:
        """One model by name or alias; 404 when unknown."""
        name = self.state.aliases.get(model, model)
        if self.state.embedder is not None and model in self.state.embedder_names():
            name = self.state.embedder.name
        for card in self.list().data:
            if card.id == name:
                return card
        raise NotFound(f"The model `{model}` does not exist.", param="model")
