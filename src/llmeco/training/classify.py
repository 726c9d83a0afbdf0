"""Text classification: a sequence-classification head on a (Llama) base, its objective, and
loading a trained classifier for inference.

The model is Hugging Face's ``AutoModelForSequenceClassification`` for the base's
architecture: the hidden state of the last non-padding token goes through a linear ``score``
head. Labels come from the data (``text``/``label`` records) and are stored in the model's
``config.id2label``, so a saved output directory is all :func:`load_classifier` needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from llmeco.errors import ConfigError, InvalidRequest
from llmeco.settings import Settings
from llmeco.training.objectives import Autocast

#: A classification example: token ids and the label's index.
LabelledExample = tuple[list[int], int]


def label_names(records: Sequence[dict[str, Any]], configured: list[str] | None) -> list[str]:
    """The label set: ``configured`` (checked against the data) or the sorted labels seen.

    Raises:
        ConfigError: no record has a label, fewer than two labels, or a label in the data
            that ``configured`` does not list.
    """
    seen = sorted({str(r["label"]) for r in records if r.get("label") is not None})
    if not seen:
        raise ConfigError(
            "classify needs records with a 'label' field (JSONL/CSV lines with text and label)"
        )
    if configured is None:
        names = seen
    else:
        unknown = sorted(set(seen) - set(configured))
        if unknown:
            raise ConfigError(f"data.labels does not list label(s) {', '.join(unknown)}")
        names = list(configured)
    if len(names) < 2:
        raise ConfigError(f"classify needs at least two labels; the data has only {names}")
    return names


def encode_text(tokenizer: Any, text: str, seq_len: int) -> list[int]:
    """Token ids of ``text`` as the classifier sees it (training and inference alike)."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])[:seq_len]
    return ids or [int(tokenizer.eos_token_id)]


def classify_examples(
    records: Sequence[dict[str, Any]], tokenizer: Any, labels: list[str], seq_len: int
) -> list[LabelledExample]:
    """``(ids, label index)`` for every labelled record; unknown labels are an error.

    Raises:
        ConfigError: a record's label is not among ``labels`` (e.g. only in the validation set).
    """
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for record in records:
        if record.get("label") is None:
            continue
        label = str(record["label"])
        if label not in index:
            raise ConfigError(f"label {label!r} is not among the training labels {labels}")
        out.append((encode_text(tokenizer, str(record["text"]), seq_len), index[label]))
    return out


def _collate(examples: Sequence[LabelledExample], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, _) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    labels = torch.tensor([label for _, label in examples], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def _pooled_logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, num_labels] logits at each row's last real token (right padding)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits: torch.Tensor = out.logits
    return logits.float()


def macro_f1(predicted: Sequence[int], gold: Sequence[int], num_labels: int) -> float:
    """Unweighted mean of per-label F1 over all ``num_labels`` (absent labels count as 0)."""
    from sklearn.metrics import f1_score

    return float(
        f1_score(gold, predicted, labels=list(range(num_labels)), average="macro", zero_division=0)
    )


class ClassifyObjective:
    """Cross-entropy over the label of each sequence; one loss term per example."""

    def __init__(self, pad_id: int, labels: list[str]) -> None:
        self.pad_id = pad_id
        self.labels = labels

    def collate(self, examples: Sequence[LabelledExample]) -> dict[str, torch.Tensor]:
        """Right-padded ids and mask, and a [B] label tensor."""
        return _collate(examples, self.pad_id)

    def targets(self, example: LabelledExample) -> int:
        """Each example is one loss term."""
        return 1

    def summed_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed cross-entropy of the batch."""
        return F.cross_entropy(_pooled_logits(model, batch), batch["labels"], reduction="sum")

    @torch.no_grad()
    def evaluate(
        self,
        model: Any,
        examples: Sequence[LabelledExample],
        batch_size: int,
        limit: int,
        device: torch.device,
        autocast: Autocast,
    ) -> dict[str, float]:
        """Mean loss, accuracy and macro F1 over the whole set (``limit`` is ignored: a
        classifier's accuracy on part of the held-out set would not be comparable)."""
        was_training = model.training
        model.eval()
        loss_sum, predicted, gold = 0.0, [], []
        for i in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in self.collate(examples[i : i + batch_size]).items()}
            with autocast():
                logits = _pooled_logits(model, batch)
            loss_sum += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
            predicted += logits.argmax(-1).tolist()
            gold += batch["labels"].tolist()
        model.train(was_training)
        n = max(1, len(gold))
        return {
            "eval_loss": loss_sum / n,
            "eval_accuracy": sum(p == g for p, g in zip(predicted, gold, strict=True)) / n,
            "eval_macro_f1": macro_f1(predicted, gold, len(self.labels)),
        }


def build_classifier(base: Path, labels: list[str], pad_id: int, dtype: torch.dtype) -> Any:
    """The base model with a fresh classification head over ``labels`` (seed beforehand)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(40)  # ERROR: the "score.weight MISSING" load report is expected
    try:
        model = _load_with_head(base, labels, dtype)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = pad_id
    return model


def _load_with_head(base: Path, labels: list[str], dtype: torch.dtype) -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        str(base),
        local_files_only=True,
        dtype=dtype,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )


@dataclass(frozen=True)
class Prediction:
    """One text's predicted label, its probability and every label's probability."""

    label: str
    score: float
    scores: dict[str, float]


class Classifier:
    """A trained classifier ready for inference (see :func:`load_classifier`)."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int, device: torch.device) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device
        config = model.config
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.pad_id = int(config.pad_token_id)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens the classifier reads of each text (after truncation to ``max_length``)."""
        return [len(encode_text(self.tokenizer, t, self.max_length)) for t in texts]

    @torch.no_grad()
    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        """Label each text; probabilities come from a softmax over the head's logits.

        Raises:
            InvalidRequest: an empty list or an empty text.
        """
        if not texts or any(not t.strip() for t in texts):
            raise InvalidRequest("predict needs one or more non-empty texts")
        out: list[Prediction] = []
        for i in range(0, len(texts), batch_size):
            chunk = [
                (encode_text(self.tokenizer, t, self.max_length), 0)
                for t in texts[i : i + batch_size]
            ]
            batch = _collate(chunk, self.pad_id)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            probs = torch.softmax(_pooled_logits(self.model, batch), dim=-1).cpu()
            for row in probs:
                best = int(row.argmax())
                scores = {name: float(p) for name, p in zip(self.labels, row, strict=True)}
                out.append(Prediction(self.labels[best], float(row[best]), scores))
        return out


def load_classifier(
    directory: Path | str, device: str = "cpu", settings: Settings | None = None
) -> Classifier:
    """Load a classifier written by ``llmeco train classify``: its output directory, or any
    reference :func:`llmeco.modeling.load.resolve_model` takes (a registry ``NAME@alias`` /
    ``NAME:N`` is checked out of ``settings``' registry, sha256-verified).

    Raises:
        NotFound / UnsafeFile / ConfigError: as :func:`llmeco.modeling.load.resolve_model`
            (missing, pickled, incomplete); ConfigError also when the directory holds no
            sequence-classification model.
    """
    from transformers import AutoModelForSequenceClassification

    from llmeco.modeling.load import load_config, load_tokenizer, resolve_model
    from llmeco.registry.checkout import resolve_local

    path = resolve_model(str(directory), settings or Settings(), resolve_ref=resolve_local).path
    config = load_config(path)
    architectures = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ConfigError(f"{path} is not a classifier (architectures: {architectures})")
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), local_files_only=True, dtype=torch.float32, use_safetensors=True
    ).to(device)
    tokenizer = load_tokenizer(path)
    max_length = int(min(getattr(tokenizer, "model_max_length", 512) or 512, 4096))
    return Classifier(model, tokenizer, max_length, torch.device(device))
