"""The built-in task types: perplexity, multiple_choice, classification, generation, retrieval.

Record fields are configurable per task (``text_field``, ``question_field`` …); the defaults
are the names below. Every task reads its ``data`` JSONL (first ``limit`` records).

perplexity       ``{"text"}``; token-level, sliding windows (``max_length``, ``stride``)
multiple_choice  ``{"question", "choices": [...], "answer": index or choice}`` (or a ready
                 ``"context"``); lm-evaluation-harness log-likelihood scoring, acc/acc_norm
classification   ``{"text", "label"}``; ``method``: ``prompt`` (the engine answers, JSON-
                 constrained to the labels), ``loglik`` (each label scored as a
                 continuation; gives probabilities, so ROC-AUC) or ``head`` (a trained
                 classifier directory, ``classifier:``)
generation       ``{"prompt", "reference"}`` or ``{"messages"}`` whose last assistant turn is
                 the reference; optional ``"keywords"`` (groups of alternatives)
retrieval        ``{"query", "relevant": [ids]}`` against ``retriever:`` (hit@k, MRR)

:func:`builtin_task_types` lists them for :mod:`.plugin`, which registers them through the
plugin hook like any other task type; :mod:`.suite` adds the ``kb:`` retriever.
"""

from __future__ import annotations

import json
import math
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from llmeco.errors import ConfigError
from llmeco.evaluation import metrics as M
from llmeco.evaluation.context import EvalContext, Retriever, RetrieverFactory, TaskResult
from llmeco.evaluation.tasks import TaskConfig, TaskType, field, read_jsonl
from llmeco.settings import Settings

if TYPE_CHECKING:
    from llmeco.evaluation.scoring import LoglikRequest

# ---- perplexity -------------------------------------------------------------------------


class PerplexityConfig(TaskConfig):
    """Perplexity of the model on texts."""

    type: Literal["perplexity"] = "perplexity"
    text_field: str = Field(default="text", description="Record field holding the text.")
    max_length: int | None = Field(
        default=None, ge=2, description="Window in tokens; default min(model context, 1024)."
    )
    stride: int | None = Field(
        default=None, ge=1, description="Tokens between window starts (< max_length); default half."
    )

    @model_validator(mode="after")
    def _stride_below_window(self) -> PerplexityConfig:
        if self.max_length and self.stride and self.stride >= self.max_length:
            raise ValueError(
                f"stride ({self.stride}) must be below max_length ({self.max_length}) so every "
                "token is scored with context"
            )
        return self


async def run_perplexity(config: PerplexityConfig, ctx: EvalContext) -> TaskResult:
    """Sum of token NLLs over all texts, each token scored once (see Scorer.rolling_requests)."""
    records = read_jsonl(config.data, config.limit)
    scorer = ctx.scorer()
    window = min(config.max_length or 1024, scorer.max_length)
    stride = config.stride or max(1, window // 2)
    if stride >= window:
        raise ConfigError(
            f"task {config.name!r}: stride {stride} must be below the window {window}"
        )
    requests, owner, n_bytes = [], [], 0
    for i, record in enumerate(records):
        text = str(field(record, config.text_field, config.data, i))
        n_bytes += len(text.encode("utf-8"))
        for req in scorer.rolling_requests(scorer.encode(text), window, stride):
            requests.append(req)
            owner.append(i)
    results = scorer.loglikelihood(requests, lambda d, t: ctx.report(config.name, d, t))
    per_doc = [[0.0, 0] for _ in records]
    for i, res in zip(owner, results, strict=True):
        per_doc[i][0] -= res.logprob
        per_doc[i][1] += res.tokens
    nll = sum(float(d[0]) for d in per_doc)
    tokens = sum(int(d[1]) for d in per_doc)
    predictions = [
        {
            "index": i,
            "nll": d[0],
            "tokens": d[1],
            "perplexity": math.exp(d[0] / d[1]) if d[1] else None,
        }
        for i, d in enumerate(per_doc)
    ]
    metrics = M.perplexity_metrics(nll, tokens, n_bytes)
    return TaskResult(len(records), metrics, {"window": window, "stride": stride}, predictions)


# ---- multiple choice --------------------------------------------------------------------


class MultipleChoiceConfig(TaskConfig):
    """Pick among choices by log-likelihood (lm-evaluation-harness ``multiple_choice``)."""

    type: Literal["multiple_choice"] = "multiple_choice"
    question_field: str = "question"
    choices_field: str = "choices"
    answer_field: str = Field(default="answer", description="Index of the right choice, or it.")
    template: str = Field(
        default="Question: {question}\nAnswer:",
        description="Context for each item ({question} and any record field); a record's "
        "own 'context' field wins.",
    )
    delimiter: str = Field(default=" ", description="Put between context and each choice.")


def _gold_index(value: Any, choices: list[str], where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: answer must be an index or one of the choices")
    if isinstance(value, int) and 0 <= value < len(choices):
        return value
    if isinstance(value, str) and value in choices:
        return choices.index(value)
    raise ConfigError(f"{where}: answer {value!r} is neither a choice index nor a choice")


def mc_context(config: MultipleChoiceConfig, record: dict[str, Any], index: int) -> str:
    """The context an item's choices are scored after."""
    if "context" in record:
        return str(record["context"])
    field(record, config.question_field, config.data, index)
    values = {**record, "question": record[config.question_field]}
    try:
        return config.template.format(**values)
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"{config.data}: record {index + 1}: template needs {exc}") from None


async def run_multiple_choice(config: MultipleChoiceConfig, ctx: EvalContext) -> TaskResult:
    """acc and acc_norm over the items; predictions list every choice's log-likelihood."""
    records = read_jsonl(config.data, config.limit)
    scorer = ctx.scorer()
    requests: list[LoglikRequest] = []
    gold: list[int] = []
    shape: list[int] = []
    nbytes: list[list[int]] = []
    for i, record in enumerate(records):
        choices = [str(c) for c in field(record, config.choices_field, config.data, i)]
        if len(choices) < 2:
            raise ConfigError(f"{config.data}: record {i + 1} needs at least two choices")
        gold.append(_gold_index(record.get(config.answer_field), choices, f"{config.data}:{i + 1}"))
        context = mc_context(config, record, i)
        requests.extend(scorer.encode_pair(context, config.delimiter + c) for c in choices)
        shape.append(len(choices))
        nbytes.append([len(c.encode("utf-8")) for c in choices])
    results = scorer.loglikelihood(requests, lambda d, t: ctx.report(config.name, d, t))
    logliks, at = [], 0
    for k in shape:
        logliks.append([r.logprob for r in results[at : at + k]])
        at += k
    metrics, pred, pred_norm = M.multiple_choice_metrics(logliks, nbytes, gold)
    predictions = [
        {"index": i, "gold": g, "pred": p, "pred_norm": q, "logliks": ll}
        for i, (g, p, q, ll) in enumerate(zip(gold, pred, pred_norm, logliks, strict=True))
    ]
    return TaskResult(len(records), dict(metrics), {}, predictions)


# ---- classification ---------------------------------------------------------------------

_PROMPT = (
    "Classify the message into exactly one of these labels: {labels}.\n\n"
    "Message: {text}\n\nAnswer with the label only."
)


class ClassificationConfig(TaskConfig):
    """Label texts; accuracy, macro P/R/F1, ROC-AUC (with probabilities), confusion matrix."""

    type: Literal["classification"] = "classification"
    text_field: str = "text"
    label_field: str = "label"
    labels: list[str] | None = Field(
        default=None, description="The label set; default: the labels in the data, sorted."
    )
    method: Literal["prompt", "loglik", "head"] = "prompt"
    classifier: str | None = Field(
        default=None,
        description="method=head: classifier directory (relative to the suite) "
        "or registry reference.",
    )
    prompt: str = Field(
        default=_PROMPT, description="method=prompt: user message ({labels}, {text})."
    )
    system: str | None = None
    template: str = Field(
        default="Message: {text}\nLabel:", description="method=loglik: context ({text}, {labels})."
    )
    delimiter: str = " "
    max_tokens: int = Field(default=32, ge=1)
    constrained: bool = Field(
        default=True, description="method=prompt: decode under a JSON schema of the labels."
    )

    @model_validator(mode="after")
    def _head_needs_classifier(self) -> ClassificationConfig:
        if self.method == "head" and not self.classifier:
            raise ValueError("method 'head' needs 'classifier': a trained classifier directory")
        return self


def _match_label(text: str, labels: list[str], constrained: bool) -> str:
    """The label an answer names: the JSON ``label`` when constrained, else the first label
    mentioned (case and ``_``/space insensitive), else the answer itself (counted wrong)."""
    if constrained:
        try:
            value = json.loads(text)
            return str(value["label"]) if isinstance(value, dict) else str(value)
        except (json.JSONDecodeError, KeyError):
            return text.strip()
    flat = text.casefold().replace("_", " ")
    found = [(flat.find(lab.casefold().replace("_", " ")), lab) for lab in labels]
    hits = sorted((pos, -len(lab), lab) for pos, lab in found if pos >= 0)
    return hits[0][2] if hits else text.strip()


async def run_classification(config: ClassificationConfig, ctx: EvalContext) -> TaskResult:
    """Classify every record with the configured method and score against the gold labels."""
    from llmeco.engine.request import ChatPrompt, SamplingParams, StructuredOutput

    records = read_jsonl(config.data, config.limit)
    texts = [str(field(r, config.text_field, config.data, i)) for i, r in enumerate(records)]
    gold = [str(field(r, config.label_field, config.data, i)) for i, r in enumerate(records)]
    labels = list(config.labels or sorted(set(gold)))
    probabilities: list[list[float]] | None = None
    outputs: list[str] = []
    if config.method == "head":
        predicted, probabilities, labels = _run_head(config, texts, labels)
    elif config.method == "loglik":
        scorer = ctx.scorer()
        shown = ", ".join(labels)
        requests = [
            scorer.encode_pair(config.template.format(text=t, labels=shown), config.delimiter + lab)
            for t in texts
            for lab in labels
        ]
        results = scorer.loglikelihood(requests, lambda d, t: ctx.report(config.name, d, t))
        probabilities, predicted = [], []
        for i in range(len(texts)):
            ll = [r.logprob for r in results[i * len(labels) : (i + 1) * len(labels)]]
            top = max(ll)
            exp = [math.exp(x - top) for x in ll]
            probabilities.append([e / sum(exp) for e in exp])
            predicted.append(labels[max(range(len(ll)), key=lambda j: (ll[j], -j))])
    else:
        schema = {
            "type": "object",
            "properties": {"label": {"enum": labels}},
            "required": ["label"],
            "additionalProperties": False,
        }
        params = SamplingParams(
            max_tokens=config.max_tokens,
            temperature=0.0,
            seed=0,
            structured=StructuredOutput("json_schema", schema) if config.constrained else None,
        )
        system = [{"role": "system", "content": config.system}] if config.system else []
        prompts = [
            ChatPrompt(
                [
                    *system,
                    {
                        "role": "user",
                        "content": config.prompt.format(labels=", ".join(labels), text=t),
                    },
                ]
            )
            for t in texts
        ]
        outputs = await ctx.generate(prompts, params, config.name)
        predicted = [_match_label(o, labels, config.constrained) for o in outputs]
    metrics, details = M.classification_metrics(gold, predicted, labels, probabilities)
    details["method"] = config.method
    predictions: list[dict[str, Any]] = []
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        item: dict[str, Any] = {"index": i, "gold": g, "pred": p}
        if outputs:
            item["output"] = outputs[i]
        if probabilities is not None:
            item["probabilities"] = dict(zip(labels, probabilities[i], strict=True))
        predictions.append(item)
    return TaskResult(len(records), metrics, details, predictions)


def _run_head(
    config: ClassificationConfig, texts: list[str], labels: list[str]
) -> tuple[list[str], list[list[float]], list[str]]:
    """Predictions and probabilities from a trained classifier head (its own label set)."""
    from llmeco.training.classify import load_classifier

    assert config.classifier is not None
    local = config.relative(config.classifier)
    classifier = load_classifier(local if local.exists() else Path(config.classifier))
    head_labels = list(classifier.labels)
    if config.labels and set(config.labels) != set(head_labels):
        raise ConfigError(
            f"task {config.name!r}: labels {config.labels} differ from the classifier's "
            f"{head_labels}"
        )
    out = classifier.predict(texts)
    return (
        [p.label for p in out],
        [[p.scores[lab] for lab in head_labels] for p in out],
        head_labels,
    )


# ---- generation -------------------------------------------------------------------------


class GenerationConfig(TaskConfig):
    """Generate an answer per record (greedy, through the engine) and compare to references."""

    type: Literal["generation"] = "generation"
    prompt_field: str = "prompt"
    messages_field: str = "messages"
    reference_field: str = "reference"
    keywords_field: str = "keywords"
    chat: bool = Field(default=True, description="Wrap a text prompt in the chat template.")
    system: str | None = None
    max_tokens: int = Field(default=128, ge=1)
    stop: list[str] = Field(default_factory=list)


def generation_item(
    config: GenerationConfig, record: dict[str, Any], index: int
) -> tuple[Any, list[str]]:
    """The prompt of one record and its references."""
    from llmeco.engine.request import ChatPrompt

    system = [{"role": "system", "content": config.system}] if config.system else []
    refs: list[str] | None = None
    if config.reference_field in record:
        value = record[config.reference_field]
        refs = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if config.prompt_field in record:
        text = str(record[config.prompt_field])
        prompt: Any = (
            ChatPrompt([*system, {"role": "user", "content": text}]) if config.chat else text
        )
    elif config.messages_field in record:
        messages = list(record[config.messages_field])
        if refs is None and messages and messages[-1].get("role") == "assistant":
            refs = [str(messages[-1]["content"])]
            messages = messages[:-1]
        prompt = ChatPrompt([*system, *messages])
    else:
        raise ConfigError(
            f"{config.data}: record {index + 1} has neither {config.prompt_field!r} nor "
            f"{config.messages_field!r}"
        )
    if refs is None:
        raise ConfigError(f"{config.data}: record {index + 1} has no reference")
    return prompt, refs


async def run_generation(config: GenerationConfig, ctx: EvalContext) -> TaskResult:
    """Greedy generations for every record, scored with EM, token F1, BLEU, chrF, ROUGE."""
    from llmeco.engine.request import SamplingParams

    records = read_jsonl(config.data, config.limit)
    items = [generation_item(config, r, i) for i, r in enumerate(records)]
    params = SamplingParams(max_tokens=config.max_tokens, temperature=0.0, seed=0, stop=config.stop)
    outputs = await ctx.generate([p for p, _ in items], params, config.name)
    outputs = [o.strip() for o in outputs]
    references = [refs for _, refs in items]
    keywords = None
    if any(config.keywords_field in r for r in records):
        keywords = [list(r.get(config.keywords_field) or []) for r in records]
    metrics = M.generation_metrics(outputs, references, keywords)
    predictions = [
        {"index": i, "output": o, "references": refs}
        for i, (o, refs) in enumerate(zip(outputs, references, strict=True))
    ]
    return TaskResult(len(records), metrics, {"max_tokens": config.max_tokens}, predictions)


# ---- retrieval --------------------------------------------------------------------------


class RetrievalConfig(TaskConfig):
    """Rank ids for each query with a retriever; hit@k and MRR."""

    type: Literal["retrieval"] = "retrieval"
    retriever: str = Field(
        description="Retriever spec, e.g. 'kb:handbook' (see register_retriever)."
    )
    query_field: str = "query"
    relevant_field: str = "relevant"
    k: list[int] = Field(default_factory=lambda: [1, 3, 5], min_length=1)


async def run_retrieval(config: RetrievalConfig, ctx: EvalContext) -> TaskResult:
    """Ask the retriever for the top max(k) ids of each answerable query (empty ``relevant``:
    skipped) and score the ranks."""
    if any(k < 1 for k in config.k):
        raise ConfigError(f"task {config.name!r}: every k must be at least 1")
    retriever = ctx.retriever(config.retriever)
    records = read_jsonl(config.data, config.limit)
    queries, relevant = [], []
    for i, r in enumerate(records):
        rel = [str(x) for x in field(r, config.relevant_field, config.data, i)]
        if rel:
            queries.append(str(field(r, config.query_field, config.data, i)))
            relevant.append(rel)
    ranked = []
    for i, q in enumerate(queries):
        ranked.append([str(x) for x in retriever(q, max(config.k))])
        ctx.report(config.name, i + 1, len(queries))
    metrics, ranks = M.retrieval_metrics(ranked, relevant, config.k)
    predictions = [
        {"query": q, "relevant": rel, "retrieved": ids, "rank": rank}
        for q, rel, ids, rank in zip(queries, relevant, ranked, ranks, strict=True)
    ]
    return TaskResult(len(queries), metrics, {"skipped": len(records) - len(queries)}, predictions)


# ---- registration -----------------------------------------------------------------------


def _kb_retriever(name: str, settings: Settings) -> Retriever:
    """``kb:NAME`` — the knowledge base's hybrid retriever (:mod:`llmeco.rag`), ids are
    section anchors (``handbook.md#Returns``)."""
    from llmeco.rag.evaluate import kb_retriever

    return kb_retriever(name, settings)


def builtin_task_types() -> dict[str, TaskType]:
    """The built-in task types by name (registered through :mod:`llmeco.evaluation.plugin`)."""
    return {
        "perplexity": TaskType(PerplexityConfig, run_perplexity),
        "multiple_choice": TaskType(MultipleChoiceConfig, run_multiple_choice),
        "classification": TaskType(ClassificationConfig, run_classification),
        "generation": TaskType(GenerationConfig, run_generation),
        "retrieval": TaskType(RetrievalConfig, run_retrieval),
    }


def register_builtin_retrievers(retrievers: MutableMapping[str, RetrieverFactory]) -> None:
    """Add the ``kb`` retriever (``kb:NAME``) unless a plugin already registered one."""
    retrievers.setdefault("kb", _kb_retriever)
