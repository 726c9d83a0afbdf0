"""Fact-level grounding and follow-ups of the support assistant, on a real embedder and a
real knowledge base (no model: the answers a small model writes are given as text)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from llmeco.apps.answerability import Signals
from llmeco.apps.support import ground, plan_turn, query_for
from llmeco.apps.support.grounding import RUNNER_UP_MARGIN, answer_sentence, answer_sentences
from llmeco.apps.support.text import content_words, conversation_turn, focus, in_context
from llmeco.apps.support.turn import Evidence, SupportTurn
from llmeco.rag.kb import KnowledgeBase
from llmeco.settings import Settings
from llmeco.store import Store

if TYPE_CHECKING:
    from llmeco.rag.embed import Embedder


@pytest.fixture
def kb(tmp_path: Path, embedder: Embedder, acme_handbook: str) -> KnowledgeBase:
    kb = KnowledgeBase.create(Store.from_settings(Settings(home=tmp_path)), "acme", embedder)
    kb.add_text("handbook.md", acme_handbook)
    return kb


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_a_sentence_with_a_number_the_passage_lacks_is_dropped_for_the_passage_sentence(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    turn = plan_turn([user("How long do refunds take?")], kb, embedder)
    assert not turn.handoff
    # close in meaning to the passage sentence, but fifteen is nowhere in it
    made_up = "Refunds are paid to the original card within fifteen business days."
    answer = ground(made_up, turn, embedder)
    assert "fifteen" not in answer and "five business days" in answer
    assert answer.endswith("[1].")
    right = "Refunds are paid to the original card within five business days."
    assert ground(right, turn, embedder).startswith(right[:-1] + " [1].")


def test_an_answer_beside_the_point_gets_the_passage_sentence_quoted_after_it(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    turn = plan_turn([user("How many charge cycles are batteries covered for?")], kb, embedder)
    best = answer_sentence(turn)
    assert best is not None and "eight hundred charge cycles" in best[1]
    answer = ground("Batteries are covered by the warranty.", turn, embedder)
    assert "eight hundred charge cycles" in answer


def test_a_follow_up_is_searched_with_the_question_it_follows(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    messages = [
        user("How long is the warranty on the frame?"),
        {"role": "assistant", "content": "Every bicycle frame has a ten year warranty [1]."},
        user("And for the batteries?"),
    ]
    assert conversation_turn(messages) == (
        "And for the batteries?",
        "How long is the warranty on the frame?",
    )
    assert query_for(messages) == "How long is the warranty on the frame? And for the batteries?"
    turn = plan_turn(messages, kb, embedder)
    assert not turn.handoff
    answer = ground("It depends on the battery.", turn, embedder)
    assert "two years" in answer  # the batteries' sentence, not the frame's
    # a question that stands on its own is searched alone
    alone = [*messages[:2], user("When is the shop in Calder open on Saturdays?")]
    assert conversation_turn(alone)[1] == ""


def test_a_short_line_with_a_number_is_a_claim_not_a_connective(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    turn = plan_turn([user("How long do refunds take?")], kb, embedder)
    answer = ground(
        "Yes. Clause 9.7. Refunds are paid to the original card within five business days.",
        turn,
        embedder,
    )
    assert "9.7" not in answer and answer.startswith("Yes. Refunds are paid")


def test_a_claim_of_the_opposite_polarity_is_dropped_for_the_passage_sentence(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    turn = plan_turn([user("Are shipping costs refunded?")], kb, embedder)
    assert not turn.handoff
    # close in meaning to "Shipping costs are not refunded ...", but it says the opposite
    answer = ground("Yes, shipping costs are refunded.", turn, embedder)
    assert not answer.startswith("Yes")
    assert "Shipping costs are not refunded unless the item arrived damaged [1]." in answer
    kept = ground("No, shipping costs are not refunded.", turn, embedder)
    assert kept.startswith("No, shipping costs are not refunded [1].")


def test_a_paraphrase_bringing_its_own_words_is_dropped_and_the_passage_quoted(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    turn = plan_turn([user("When is the shop in Calder closed?")], kb, embedder)
    # every word but "weekends" is the passage's or the question's: not what it says
    answer = ground("The shop in Calder is closed at weekends.", turn, embedder)
    assert "weekends" not in answer
    best = answer_sentence(turn)
    assert best is not None and answer == f"{best[1][:-1]} [{best[0]}]."


def test_the_passage_sentence_is_not_quoted_again_when_the_answer_states_it(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    turn = plan_turn([user("How long is the frame warranty?")], kb, embedder)
    answer = ground("Every bicycle frame has a ten year warranty.", turn, embedder)
    assert answer == "Every bicycle frame has a ten year warranty [1]."
    # an unfinished last sentence is not a connective: it is dropped, not shown
    cut = ground("Every bicycle frame has a ten year warranty. The frame is", turn, embedder)
    assert cut == answer


def test_a_sentence_that_points_back_is_read_with_the_one_it_continues(
    tmp_path: Path, embedder: Embedder
) -> None:
    assert in_context(
        ["The Ridge is built for hills.", "Its motor sits low.", "It weighs 23 kg."]
    ) == [
        "The Ridge is built for hills.",
        "The Ridge is built for hills. Its motor sits low.",
        "The Ridge is built for hills. It weighs 23 kg.",
    ]
    kb = KnowledgeBase.create(Store.from_settings(Settings(home=tmp_path)), "bikes", embedder)
    kb.add_text(
        "bikes.md",
        "# Bicycles\n\n## The Ridge\n\nThe Ridge is built for hills. Its motor sits at the "
        "bottom bracket, which gives a natural feel on steep climbs. It weighs 23 kilograms "
        "and costs 2,690 euros.\n\n## The Coast\n\nThe Coast is a step-through commuter with "
        "a low frame. It weighs 22 kilograms and costs 2,190 euros.\n",
    )
    turn = plan_turn([user("What does the Ridge cost?")], kb, embedder)
    best = answer_sentence(turn)
    assert best is not None and "2,690 euros" in best[1]


def test_a_follow_up_naming_a_new_subject_swaps_it_into_the_question() -> None:
    first = [user("How many responses a month does Team include?")]
    reply = {"role": "assistant", "content": "Team includes 10,000 [1]."}
    assert conversation_turn([*first, reply, user("What about Business?")]) == (
        "What about Business?",
        "How many responses a month does Business include?",
    )
    # acronyms name a topic, not the subject: they stay; other names stay too
    trip = [user("Can the API of the Ridge be used in New York?"), reply, user("And Summit?")]
    assert conversation_turn(trip)[1] == "Can the API of the Summit be used in New York?"
    # a follow-up with words of its own keeps the question it follows as it was
    longer = [*first, reply, user("What about the Business plan's storage quota?")]
    assert conversation_turn(longer)[1] == "How many responses a month does Team include?"


def test_a_follow_up_stays_on_the_subject_of_the_question_it_follows(
    tmp_path: Path, embedder: Embedder
) -> None:
    kb = KnowledgeBase.create(Store.from_settings(Settings(home=tmp_path)), "api", embedder)
    kb.add_text(
        "limits.md",
        "# Rate limits\n\n## Requests per minute\n\n"
        "| Plan | Requests per minute | Requests per day |\n|---|---|---|\n"
        "| Team | 300 | 100,000 |\n| Business | 1,000 | 500,000 |\n"
        "| Enterprise | 3,000 | no daily cap |\n",
    )
    messages = [
        user("How many API requests per minute can a Business workspace make?"),
        {"role": "assistant", "content": "Business: Requests per minute 1,000 [1]."},
        user("Is there a daily cap too?"),
    ]
    best = answer_sentence(plan_turn(messages, kb, embedder))
    # the Business row, although the Enterprise row has the very words "daily cap"
    assert best is not None and "500,000" in best[1]


CLINIC = Path(__file__).resolve().parents[3] / "examples" / "handbooks" / "clinic" / "guide.html"


@pytest.mark.parametrize(
    ("first", "then", "expected"),
    [
        (
            "How many days of medicine does a repeat prescription usually cover?",
            "How early am I allowed to reorder it?",
            "7 days before you will run out",
        ),
        (
            "How long do blood test results normally take to come back?",
            "And if I still haven't heard anything, when should I call?",
            "10 working days",
        ),
    ],
)
def test_a_follow_up_asking_something_new_is_answered_by_the_sentence_on_it(
    tmp_path: Path, embedder: Embedder, first: str, then: str, expected: str
) -> None:
    kb = KnowledgeBase.create(Store.from_settings(Settings(home=tmp_path)), "gp", embedder)
    kb.add_file(CLINIC, "guide.html")
    messages = [user(first), {"role": "assistant", "content": "I see [1]."}, user(then)]
    # the whole conversation resembles the sentence answering the first question most
    best = answer_sentence(plan_turn(messages, kb, embedder))
    assert best is not None and expected in best[1]


def test_only_words_that_point_back_make_a_follow_up() -> None:
    first = user("How much does the Starter plan cost per month?")
    answer = {"role": "assistant", "content": "Starter costs $15 a month [1]."}

    def follows(question: str) -> bool:
        return conversation_turn([first, answer, user(question)])[1] != ""

    # questions that stand on their own: an existential "there", a counted "one"
    assert not follows("Is there parking for disabled visitors at the main site?")
    assert not follows("Are there any fees for cancelling an appointment late?")
    assert not follows("How many files can one question take per response?")
    # questions that lean on the one before
    assert follows("Is there a daily cap on the plan too?")
    assert follows("How much notice do you need for one in person?")
    assert follows("Is the cheaper one available with yearly billing?")
    assert follows("How do I get there from the train station?")


def evidence_turn(query: str, sentences: list[tuple[int, str, float]]) -> SupportTurn:
    """A turn whose evidence is ``(passage, sentence, similarity to the question)`` rows."""
    turn = SupportTurn(query, [], Signals(0.0, ()))
    turn.evidence = Evidence(
        sentences=[(n, text) for n, text, _ in sentences],
        vectors=np.eye(len(sentences), dtype=np.float32),
        relevance=np.array([r for _, _, r in sentences], dtype=np.float32),
    )
    return turn


def test_a_sentence_scoring_nearly_as_well_is_quoted_after_the_answer_sentence() -> None:
    close = RUNNER_UP_MARGIN / 2
    turn = evidence_turn(
        "What is it?",  # no words to share: the sentences' similarities decide
        [
            (1, "Plenty of riders ask us about range on cold days.", 0.70),
            (1, "The battery pack weighs 3.1 kilograms.", 0.70 - close),
            (2, "Plenty of riders ask us about range on cold days.", 0.70),  # overlap copy
            (2, "Delivery is free above two hundred euros.", 0.20),
        ],
    )
    chosen = answer_sentences(turn)
    # the two cannot be told apart, so both are quoted; the copy of the first is not
    assert [t for _, t in chosen] == [
        "Plenty of riders ask us about range on cold days.",
        "The battery pack weighs 3.1 kilograms.",
    ]
    assert answer_sentence(turn) == chosen[0]
    answer = ground("", turn, embedder=None)  # type: ignore[arg-type]  # nothing to embed
    assert answer == (
        "Plenty of riders ask us about range on cold days [1]. "
        "The battery pack weighs 3.1 kilograms [1]."
    )


def test_a_clear_answer_sentence_is_quoted_alone() -> None:
    far = RUNNER_UP_MARGIN * 3
    turn = evidence_turn(
        "What is it?",
        [
            (1, "Plenty of riders ask us about range on cold days.", 0.30),
            (1, "The battery pack weighs 3.1 kilograms.", 0.30 + far),
        ],
    )
    assert [t for _, t in answer_sentences(turn)] == ["The battery pack weighs 3.1 kilograms."]


def test_contractions_and_indefinite_pronouns_are_not_words_to_find() -> None:
    # "don't" is "do not", not a word "don" that no passage contains
    assert content_words("Can I send back a bike I don't like?") == ["send", "back", "bike"]
    assert content_words("It doesn\u2019t charge; do I get anything off?") == ["charge", "off"]


def test_a_vague_question_keeps_the_statement_that_says_what_it_is_about() -> None:
    assert focus("My bike was stolen last week. What should I do?") == (
        "My bike was stolen last week. What should I do?"
    )
    assert focus("I forgot my password. How do I reset it?") == (
        "I forgot my password. How do I reset it?"
    )
    # a question that says enough stands alone: the small talk before it is left out
    assert focus("I study at the college. Can I register for a few months?") == (
        "Can I register for a few months?"
    )


def embedded_turn(query: str, sentences: list[str], embedder: Embedder) -> SupportTurn:
    """A turn whose evidence is ``sentences`` of passage [1], embedded for real."""
    vectors = embedder.embed([query, *sentences])
    turn = SupportTurn(query, [], Signals(0.0, ()))
    turn.evidence = Evidence([(1, t) for t in sentences], vectors[1:], vectors[1:] @ vectors[0])
    return turn


@pytest.fixture
def confirmation(embedder: Embedder) -> SupportTurn:
    """A question whose answer sentence states no number, time or name."""
    return embedded_turn(
        "When will I get an order confirmation?",
        ["Every order is confirmed by email within one working day."],
        embedder,
    )


def test_a_sentence_cut_off_by_the_token_limit_is_not_shown(
    confirmation: SupportTurn, embedder: Embedder
) -> None:
    turn = confirmation
    # the model stopped mid-sentence: the tail is dropped, and the passage answers instead
    assert ground("The order confirmation is", turn, embedder) == (
        "Every order is confirmed by email within one working day [1]."
    )


def test_a_claim_resting_on_a_sentence_without_facts_does_not_stand_for_it(
    confirmation: SupportTurn, embedder: Embedder
) -> None:
    turn = confirmation
    # supported by the answer sentence, but it leaves out when: the sentence is quoted after
    assert ground("Your order is confirmed by email.", turn, embedder) == (
        "Your order is confirmed by email [1]. "
        "Every order is confirmed by email within one working day [1]."
    )
    # with a fact, resting on it and holding its facts states it: not quoted again
    turn = embedded_turn(
        "How long do I have to return accessories?",
        ["Accessories may be returned within sixty days if they are unused."],
        embedder,
    )
    assert ground("Accessories may be returned within 60 days.", turn, embedder) == (
        "Accessories may be returned within 60 days [1]."
    )


def test_a_follow_up_asking_a_question_of_its_own_asks_for_its_own_kind_of_fact() -> None:
    def best(last: str, sentences: list[tuple[int, str, float]]) -> str:
        turn = evidence_turn(f"How soon will I be invited for a health check? {last}", sentences)
        turn.extra["last"] = last
        turn.extra["context"] = "How soon will I be invited for a health check?"
        chosen = answer_sentence(turn)
        assert chosen is not None
        return chosen[1]

    rows = [
        (1, "Adults are invited to a health check within 6 weeks of registering.", 0.60),
        (1, "Please bring a list of any medicines you take.", 0.50),
    ]
    # "What should I bring?" wants a thing, not the number "how soon" wanted
    assert best("What should I bring with me to it?", rows) == rows[1][1]
    # an elliptical follow-up asks for what its question asked for: a time
    rows = [
        (1, "Children are invited within 8 weeks of registering.", 0.50),
        (1, "Children are seen by the practice nurse at the check.", 0.55),
    ]
    assert best("And for children?", rows) == rows[0][1]
