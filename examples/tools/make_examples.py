"""Write the shipped example sets from the facts and phrasings in this folder (deterministic).

    python examples/tools/make_examples.py        # rewrites the files listed below

* ``examples/chat/support.jsonl``: support conversations (``messages``), answers grounded in
  ``examples/corpus/handbook.md``; one question of every fact is held out.
* ``examples/heldout/support.jsonl``: the held-out questions with a reference answer
  (``messages``) and the keywords a correct answer contains (``keywords``: groups of
  alternatives; every group must match).
* ``examples/classify/{intents,sentiment}.jsonl`` and ``examples/heldout/`` (same names):
  ``text``/``label`` lines; whole phrasings are held out, so held-out lines use wordings the
  training lines never do.

The output is committed; rerunning the script reproduces it byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from classify_templates import (  # noqa: E402
    CLOSERS,
    DAYS,
    INTENTS,
    MODELS,
    OPENERS,
    ORDERS,
    PARTS,
    SENTIMENTS,
)
from support_facts import CONTEXTS, FACTS, GREETINGS, SYSTEM_PROMPTS, THANKS  # noqa: E402

EXAMPLES = HERE.parent


def _stable(*parts: object) -> int:
    """A hash of ``parts`` that does not change between Python runs (unlike ``hash``)."""
    key = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path.relative_to(EXAMPLES.parent)}: {len(rows)} lines")


def _ask(rng: random.Random, question: str) -> str:
    """A customer's message: an optional greeting and context before the question."""
    greeting, context = rng.choice(GREETINGS), rng.choice(CONTEXTS)
    if not context and greeting.endswith(", ") and not question.startswith(("I ", "I'")):
        question = question[0].lower() + question[1:]  # "Hello, how ..."
    elif context or greeting:
        question = question[0].upper() + question[1:]
    text = greeting + context + question
    return text[0].upper() + text[1:]


def support_sets() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training conversations, held-out questions): one held-out question per fact."""
    rng = random.Random(5)
    heldout: list[dict[str, Any]] = []
    pool: list[tuple[int, str]] = []  # (fact index, question) available for training
    for index, fact in enumerate(FACTS):
        held = _stable("support", fact.id) % len(fact.questions)
        question = fact.questions[held]
        heldout.append(
            {
                "fact": fact.id,
                "question": question,
                "keywords": [list(group) for group in fact.keywords],
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": fact.answers[0]},
                ],
            }
        )
        pool += [(index, q) for i, q in enumerate(fact.questions) if i != held]
    rng.shuffle(pool)
    conversations = []
    for index, question in pool:
        fact = FACTS[index]
        messages: list[dict[str, str]] = []
        if rng.random() < 0.5:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        messages.append({"role": "user", "content": _ask(rng, question)})
        messages.append({"role": "assistant", "content": rng.choice(fact.answers)})
        roll = rng.random()
        if roll < 0.2:
            other_index, other = rng.choice(pool)
            if other_index != index:
                follow = "One more thing: " + other[0].lower() + other[1:]
                messages.append({"role": "user", "content": follow})
                messages.append(
                    {"role": "assistant", "content": rng.choice(FACTS[other_index].answers)}
                )
        elif roll < 0.4:
            thanks, reply = rng.choice(THANKS)
            messages += [
                {"role": "user", "content": thanks},
                {"role": "assistant", "content": reply},
            ]
        conversations.append({"messages": messages})
    return conversations, heldout


def _fill(rng: random.Random, phrasing: str) -> str:
    text = phrasing.format(
        model=rng.choice(MODELS),
        part=rng.choice(PARTS),
        days=rng.choice(DAYS),
        order=rng.choice(ORDERS),
        place="Calder",
    )
    opener, closer = rng.choice(OPENERS), rng.choice(CLOSERS)
    if opener and text[0].isupper() and not text.startswith(("I ", "I'", "Is ", "Ridge", "Coast")):
        text = text[0].lower() + text[1:]
    text = opener + text + closer
    if rng.random() < 0.15:  # people type in a hurry
        text = text.lower().rstrip(".!?")
    return text[0].upper() + text[1:] if text[0].isalpha() and rng.random() < 0.9 else text


def labelled_sets(
    name: str, phrasings: dict[str, list[str]], per_phrasing: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, held-out) ``text``/``label`` rows; a fifth of each label's phrasings (chosen
    by a stable hash) is held out whole."""
    rng = random.Random(f"{name}-7")
    train: list[dict[str, str]] = []
    heldout: list[dict[str, str]] = []
    seen: set[str] = set()
    for label, templates in phrasings.items():
        ranked = sorted(range(len(templates)), key=lambda i: _stable(name, label, i))
        held = set(ranked[: max(1, len(templates) // 5)])
        for i, phrasing in enumerate(templates):
            target = heldout if i in held else train
            for _ in range(per_phrasing):
                text = _fill(rng, phrasing)
                if text.casefold() not in seen:
                    seen.add(text.casefold())
                    target.append({"text": text, "label": label})
    rng.shuffle(train)
    rng.shuffle(heldout)
    return train, heldout


def main() -> None:
    """Write every example set."""
    conversations, heldout = support_sets()
    _write(EXAMPLES / "chat" / "support.jsonl", conversations)
    _write(EXAMPLES / "heldout" / "support.jsonl", heldout)
    for name, phrasings, per in (("intents", INTENTS, 5), ("sentiment", SENTIMENTS, 5)):
        train, held = labelled_sets(name, phrasings, per)
        _write(EXAMPLES / "classify" / f"{name}.jsonl", train)
        _write(EXAMPLES / "heldout" / f"{name}.jsonl", held)


if __name__ == "__main__":
    main()
