"""Answer-level evaluation of a support assistant: is the answer right, does it cite the
passage that holds the fact, is every fact it states in a passage it cites, does it hand off
what the documents do not answer, and does it follow a conversation.

One definition for every system scored (``llmeco kb eval --answers``, ``benchmarks/support.py``
and the LlamaIndex / LangChain peers there): a system is an :data:`Ask`, a coroutine that takes
a conversation (OpenAI-style messages) and returns a :class:`Reply` (the answer, the passages
offered with it, which of them the answer cites, whether it was handed to a person).

Question files (JSONL): answerable questions ``{"id", "query", "relevant", "answer"}``,
unanswerable ones with ``"relevant": []``, two-turn conversations
``{"id", "turns": [{"query", "relevant", "answer"}, {...}]}`` whose second turn is scored.

Definitions (facts normalised as :func:`~llmeco.apps.support.facts.normalise` says: case,
spacing, number words vs digits, currency, time and unit spellings):

* **correct**: the expected fact appears in the answer (a hand-off is not correct);
* **cited**: a passage the answer cites contains the expected fact;
* **grounded**: every number, date, time, amount, duration and proper name in the answer
  appears in a passage it cites (:func:`~llmeco.apps.support.facts.missing_facts`); measured
  over every answer that is not a hand-off;
* **hand-off recall**: share of unanswerable questions handed off; **false hand-off rate**:
  share of answerable questions handed off; **hand-off precision**: share of hand-offs that
  were unanswerable questions;
* **follow-up correct**: share of conversations whose second answer is correct.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmeco.apps.support.facts import contains, missing_facts
from llmeco.errors import ConfigError, NotFound

_MARKER = re.compile(r"\[(\d{1,2})\]")
#: What a system that cannot hand off says instead (scored as a hand-off for the peers).
_REFUSAL = re.compile(
    r"\b(?:(?:do not|don't|does not|doesn't|cannot|can't|could not|couldn't|am unable to|"
    r"unable to)\s+(?:know|find|provide|answer|say|determine|help|have)|"
    r"not (?:mentioned|provided|specified|stated|included|available|covered)|"
    r"no (?:information|mention|details?|data)|not enough information|"
    r"(?:context|passages?|documents?|information) (?:does|do) not)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Passage:
    """A passage offered with an answer, as the answer cites it (``[index]``)."""

    index: int
    text: str


@dataclass
class Reply:
    """What a system answered to one turn."""

    answer: str
    passages: list[Passage]
    #: The passage indexes the answer cites; None for a system without citation markers
    #: (every passage it returned counts as cited).
    cited: list[int] | None
    handoff: bool
    latency_s: float = 0.0

    def cited_texts(self) -> list[str]:
        """The texts of the passages the answer cites."""
        if self.cited is None:
            return [p.text for p in self.passages]
        wanted = set(self.cited)
        return [p.text for p in self.passages if p.index in wanted]


#: A system under test: a conversation in, its reply to the last user message out.
Ask = Callable[[list[dict[str, str]]], Awaitable[Reply]]


@dataclass(frozen=True)
class Item:
    """One scored question: a single query, or a conversation whose last turn is scored."""

    id: str
    kind: str  # "answerable", "unanswerable" or "followup"
    queries: tuple[str, ...]
    answer: str = ""


@dataclass
class Outcome:
    """How one item went."""

    id: str
    kind: str
    query: str
    expected: str
    answer: str
    handoff: bool
    correct: bool
    cited: bool
    grounded: bool
    missing: list[str]
    latency_s: float


@dataclass
class AnswerScore:
    """The answer-level figures over a question set, with every outcome."""

    answerable: int
    unanswerable: int
    followups: int
    correct: float
    cited: float
    grounded: float
    handoff_precision: float
    handoff_recall: float
    false_handoff_rate: float
    followup_correct: float
    latency_p50_s: float
    latency_p95_s: float
    outcomes: list[Outcome] = field(default_factory=list)

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """JSON-ready figures (rounded); with ``details``, every outcome too."""
        out: dict[str, Any] = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in asdict(self).items()
            if k != "outcomes"
        }
        out["misses"] = [o.id for o in self.outcomes if o.kind != "unanswerable" and not o.correct][
            :30
        ]
        if details:
            out["outcomes"] = [asdict(o) for o in self.outcomes]
        return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise NotFound(f"no question file {path}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{path}:{n}: not JSON ({e})") from e
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{n}: not a JSON object")
        row.setdefault("id", f"{path.stem}-{n}")
        rows.append(row)
    return rows


def load_items(path: Path) -> list[Item]:
    """The scored items of a question file: each line a question (answerable when it has a
    non-empty ``relevant`` or an ``answer``, else unanswerable) or a conversation (``turns``).

    Raises:
        NotFound: no such file. ConfigError: a line that is neither (names file and line).
    """
    items: list[Item] = []
    for n, row in enumerate(_read_jsonl(path), 1):
        where = f"{path}:{n}"
        if "turns" in row:
            turns = row["turns"]
            if (
                not isinstance(turns, list)
                or len(turns) < 2
                or not all(isinstance(t, dict) and isinstance(t.get("query"), str) for t in turns)
            ):
                raise ConfigError(f"{where}: 'turns' must be two or more objects with a 'query'")
            answer = str(turns[-1].get("answer") or "")
            if not answer:
                raise ConfigError(f"{where}: the last turn needs an 'answer'")
            queries = tuple(str(t["query"]) for t in turns)
            items.append(Item(str(row["id"]), "followup", queries, answer))
            continue
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"{where}: needs a non-empty string 'query'")
        answer = str(row.get("answer") or "")
        kind = "answerable" if answer or row.get("relevant") else "unanswerable"
        if kind == "answerable" and not answer:
            raise ConfigError(f"{where}: an answerable question needs an 'answer'")
        items.append(Item(str(row["id"]), kind, (query,), answer))
    return items


def judge(item: Item, reply: Reply) -> Outcome:
    """Score one reply to ``item`` (see the module docstring for the definitions)."""
    answer = reply.answer
    given = not reply.handoff
    bare = _MARKER.sub(" ", answer)
    cited_texts = reply.cited_texts()
    expected = item.answer
    missing = missing_facts(answer, cited_texts) if given else []
    return Outcome(
        id=item.id,
        kind=item.kind,
        query=item.queries[-1],
        expected=expected,
        answer=answer,
        handoff=reply.handoff,
        correct=bool(given and expected and contains(expected, bare)),
        cited=bool(given and expected and any(contains(expected, t) for t in cited_texts)),
        grounded=given and not missing,
        missing=missing,
        latency_s=reply.latency_s,
    )


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarise(outcomes: Sequence[Outcome]) -> AnswerScore:
    """The figures of :class:`AnswerScore` from scored outcomes."""
    a = [o for o in outcomes if o.kind == "answerable"]
    u = [o for o in outcomes if o.kind == "unanswerable"]
    f = [o for o in outcomes if o.kind == "followup"]
    handed = [o for o in outcomes if o.handoff and o.kind != "followup"]
    latencies = [o.latency_s for o in outcomes]
    return AnswerScore(
        answerable=len(a),
        unanswerable=len(u),
        followups=len(f),
        correct=_share([o.correct for o in a]),
        cited=_share([o.cited for o in a]),
        grounded=_share([o.grounded for o in outcomes if not o.handoff]),
        handoff_precision=_share([o.kind == "unanswerable" for o in handed]),
        handoff_recall=_share([o.handoff for o in u]),
        false_handoff_rate=_share([o.handoff for o in a]),
        followup_correct=_share([o.correct for o in f]),
        latency_p50_s=_percentile(latencies, 0.5),
        latency_p95_s=_percentile(latencies, 0.95),
        outcomes=list(outcomes),
    )


async def _conversation(ask: Ask, item: Item) -> Reply:
    """Ask each query of ``item`` in turn, with the answers so far as history; the last
    reply, timed alone."""
    messages: list[dict[str, str]] = []
    reply = Reply("", [], [], False)
    for query in item.queries:
        messages.append({"role": "user", "content": query})
        reply = await ask(list(messages))
        messages.append({"role": "assistant", "content": reply.answer})
    return reply


async def run(ask: Ask, items: Sequence[Item], *, concurrency: int = 8) -> AnswerScore:
    """Ask every item (``concurrency`` at a time) and score the replies."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(item: Item) -> Outcome:
        async with sem:
            return judge(item, await _conversation(ask, item))

    return summarise(await asyncio.gather(*(one(i) for i in items)))


def reply_from_completion(body: dict[str, Any], latency_s: float) -> Reply:
    """A :class:`Reply` from an llmeco ``support:<kb>`` chat completion (its ``citations``,
    its ``[n]`` markers and ``finish_reason: "handoff"``)."""
    choice = body["choices"][0]
    text = str(choice["message"]["content"] or "")
    passages = [Passage(int(c["index"]), str(c["text"])) for c in body.get("citations") or []]
    marks = list(dict.fromkeys(int(m) for m in _MARKER.findall(text)))
    return Reply(text, passages, marks, choice.get("finish_reason") == "handoff", latency_s)


def support_asker(client: Any, kb: str, *, max_tokens: int = 60) -> Ask:
    """An :data:`Ask` for llmeco's assistant ``support:<kb>`` behind an ``httpx.AsyncClient``
    (in process or over the network): every conversation sends its whole history."""

    async def ask(messages: list[dict[str, str]]) -> Reply:
        t0 = time.perf_counter()
        r = await client.post(
            "/v1/chat/completions",
            json={"model": f"support:{kb}", "messages": messages, "max_tokens": max_tokens},
        )
        r.raise_for_status()
        return reply_from_completion(r.json(), time.perf_counter() - t0)

    return ask


def refuses(answer: str) -> bool:
    """Whether a plain answer says it cannot answer (how a system without a hand-off hands
    off; used to score the LlamaIndex and LangChain peers)."""
    return bool(_REFUSAL.search(answer)) or not answer.strip()
