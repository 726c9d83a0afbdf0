"""Answer-level scoring of a support assistant: correct, cited, grounded, hand-offs and
follow-ups, by one definition for every system scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmeco.apps.support.evaluate import (
    Item,
    Passage,
    Reply,
    judge,
    load_items,
    refuses,
    reply_from_completion,
    run,
)
from llmeco.errors import ConfigError

PASSAGES = [
    Passage(1, "Parking is free for up to 90 minutes. The gate is locked at 19:00."),
    Passage(2, "The blood test room opens at 07:45 on Mondays."),
]
PARKING = Item("q1", "answerable", ("How long can I park for free?",), "90 minutes")


def test_a_right_cited_answer_is_correct_cited_and_grounded() -> None:
    o = judge(PARKING, Reply("You can park free for ninety minutes [1].", PASSAGES, [1], False))
    assert (o.correct, o.cited, o.grounded, o.missing) == (True, True, True, [])


def test_a_made_up_number_is_not_grounded_and_a_wrong_citation_not_cited() -> None:
    o = judge(
        PARKING, Reply("Parking is free for 90 minutes until 20:00 [2].", PASSAGES, [2], False)
    )
    assert o.correct and not o.cited and not o.grounded and o.missing == ["90", "20"]
    o = judge(PARKING, Reply("It varies [1].", PASSAGES, [1], False))
    assert not o.correct and o.cited and o.grounded


def test_a_handoff_is_neither_correct_nor_counted_in_grounding() -> None:
    o = judge(PARKING, Reply("I'm sorry, a colleague will answer.", [], [], True))
    assert o.handoff and not o.correct and not o.cited and not o.grounded


def test_a_system_without_markers_cites_every_passage_it_returned() -> None:
    o = judge(PARKING, Reply("Free parking lasts 90 minutes.", PASSAGES, None, False))
    assert o.cited and o.grounded


async def test_run_scores_questions_handoffs_and_the_second_turn_of_conversations() -> None:
    items = [
        PARKING,
        Item("q2", "answerable", ("When does the blood room open?",), "07:45"),
        Item("u1", "unanswerable", ("Do you do acupuncture?",)),
        Item("u2", "unanswerable", ("Do you sell scooters?",)),
        Item("c1", "followup", ("When does the blood room open?", "And the gate?"), "19:00"),
    ]
    seen: list[list[dict[str, str]]] = []

    async def ask(messages: list[dict[str, str]]) -> Reply:
        seen.append(messages)
        last = messages[-1]["content"]
        if "acupuncture" in last or "blood room" in last:
            return Reply("Sorry, passed to a person.", [], [], True, 2.0)
        if "gate" in last:
            return Reply("The gate is locked at 7pm [1].", PASSAGES, [1], False, 1.0)
        # (7pm is not 19:00: the scorer does not convert clocks, so this is not correct)
        return Reply("Parking is free for 90 minutes [1].", PASSAGES, [1], False, 1.0)

    score = await run(ask, items, concurrency=2)
    assert score.answerable == 2 and score.unanswerable == 2 and score.followups == 1
    assert score.correct == 0.5 and score.cited == 0.5
    assert score.false_handoff_rate == 0.5 and score.handoff_recall == 0.5
    assert score.handoff_precision == 0.5  # one of the two hand-offs was unanswerable
    assert score.grounded == 2 / 3  # q1 and u2 hold; c1's "7" is in no cited passage
    assert score.followup_correct == 0.0
    conversation = next(m for m in seen if len(m) == 3)
    assert [m["role"] for m in conversation] == ["user", "assistant", "user"]
    assert score.latency_p50_s == 1.0 and score.latency_p95_s == 2.0


def test_question_files_of_every_kind_load(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "query": "How long?", "relevant": ["d.md#X"], "answer": "5 days"},
        {"id": "u", "query": "Scooters?", "relevant": []},
        {
            "id": "c",
            "turns": [{"query": "Price?", "answer": "£5"}, {"query": "And VAT?", "answer": "20%"}],
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = load_items(path)
    assert [(i.id, i.kind, i.queries, i.answer) for i in items] == [
        ("a", "answerable", ("How long?",), "5 days"),
        ("u", "unanswerable", ("Scooters?",), ""),
        ("c", "followup", ("Price?", "And VAT?"), "20%"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('{"query": ""}', "non-empty string 'query'"),
        ('{"query": "Q?", "relevant": ["d#x"]}', "needs an 'answer'"),
        ('{"turns": [{"query": "Q?"}]}', "two or more"),
        ('{"turns": [{"query": "Q?"}, {"query": "R?"}]}', "last turn needs an 'answer'"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_items(path)
    assert f"{path}:1" in str(e.value)


def test_llmeco_completions_and_peer_refusals_are_read() -> None:
    body = {
        "choices": [
            {"message": {"content": "Free for 90 minutes [2] [1]."}, "finish_reason": "stop"}
        ],
        "citations": [{"index": 1, "text": "a"}, {"index": 2, "text": "b"}],
    }
    reply = reply_from_completion(body, 0.5)
    assert reply.cited == [2, 1] and not reply.handoff and reply.cited_texts() == ["a", "b"]
    handed = {"choices": [{"message": {"content": "Sorry"}, "finish_reason": "handoff"}]}
    assert reply_from_completion(handed, 0.1).handoff
    assert refuses("I don't know the answer to that.")
    assert refuses("The context does not mention scooters.")
    assert not refuses("Parking is free for 90 minutes.")
