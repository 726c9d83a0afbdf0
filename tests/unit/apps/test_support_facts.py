"""Facts in answers: one fact written two ways compares equal, and an answer's numbers and
names are found (the assistant's fact-level grounding and the answer evaluation share this)."""

from __future__ import annotations

import pytest

from llmeco.apps.support.facts import contains, facts_of, missing_facts, normalise


@pytest.mark.parametrize(
    ("expected", "answer"),
    [
        ("within ten working days", "Refunds arrive within 10 working days [1]."),
        ("£1,200", "It costs 1200 pounds."),
        ("€52 per dose", "The vaccine is 52 euros per dose."),
        ("07:45 to 11:30", "The room opens 7:45 until 11:30 on Mondays."),
        ("9.30am", "We open at 9:30 a.m."),
        ("twenty-four hours", "Replies come within 24 hours."),
        ("90 minutes", "Parking is free for up to ninety mins."),
        ("20 per cent", "You save 20% on the yearly plan."),
        ("Nurse Tomasz Wieczorek", "It is run by nurse tomasz  wieczorek [2]."),
    ],
)
def test_the_same_fact_written_another_way_is_found(expected: str, answer: str) -> None:
    assert contains(expected, answer)


@pytest.mark.parametrize(
    ("expected", "answer"),
    [
        ("90 minutes", "Parking is free for up to 30 minutes."),
        ("15", "It takes 150 days."),  # whole numbers, not digits inside another number
        ("08:15 to 12:30", "The room opens at 08:15."),
        ("9 Orchard Lane", "Orchard Lane is the address."),
    ],
)
def test_a_different_or_partial_fact_is_not_found(expected: str, answer: str) -> None:
    assert not contains(expected, answer)


def test_facts_of_an_answer_are_its_numbers_and_names() -> None:
    text = "Yes. The Calder clinic at 14 Quay Street opens at 9.30am, ten minutes early [1]."
    assert facts_of(text) == ["14", "9:30", "10", "calder", "quay street"]
    # a capitalised word that only opens a sentence, "one" and citation markers are not facts
    assert facts_of("Refunds go to one card [2]. Shipping is not refunded.") == []


def test_missing_facts_are_the_ones_no_source_states() -> None:
    sources = ["Our shop is open from nine in the morning to six in the evening."]
    assert missing_facts("We open at 9 and close at 6.", sources) == []
    assert missing_facts("We open at 9 and close at 8.", sources) == ["8"]
    assert missing_facts("Ask Maria Lopez at the desk.", sources) == ["maria lopez"]


def test_normalise_spells_times_units_and_currency_one_way() -> None:
    assert (
        normalise("Open 09:00 to 17:30, £5 per hour; 2 weeks")
        == "open 9 to 17:30 5 per hour 2 week"
    )


def test_a_citation_marker_ends_a_name() -> None:
    # a quoted row without a full stop, then the next sentence: two facts, not one name
    assert facts_of("Open at the Harbour Room [1] Kestrel Bay staff may book it.") == [
        "harbour room",
        "bay",
    ]


def test_codes_glued_to_digits_are_checked_whole() -> None:
    passage = "Fill in form R2 at reception. Requests carry an HMAC-SHA256 of the body."
    assert facts_of("You can fill in form R2 [1].") == ["r2"]
    assert missing_facts("You can fill in form R2 [1].", [passage]) == []
    assert missing_facts("It is an HMAC-SHA256 of the body [1].", [passage]) == []
    assert missing_facts("Use form R3 instead [1].", [passage]) == ["r3"]
    assert missing_facts("It is an HMAC-MD5 [1].", [passage]) == ["md5"]
