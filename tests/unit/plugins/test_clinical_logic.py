"""The clinical plugin's logic without a server: de-identification, extraction, flags."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from llmeco_clinical import deid, extract, interactions, lexicon, summary

from llmeco.errors import InvalidRequest

NOTE = """Patient: Maria Okafor
DOB: 03/14/1956
MRN: 00482913
Visit date: 2024-05-02
Address: 12 Elm Street, Springfield, IL 62704
Phone: (555) 201-3344
Attending: Dr. Elena Raskin

History: Mrs. Okafor, a 68-year-old woman, was seen for dizziness in 2023. Her husband Tom
joined the visit. Alzheimer disease runs in the family.

Problems:
1. atrial fibrillation
2. osteoarthritis of the knee

Medications:
- Coumadin 5mg PO daily
- Advil 400 mg TID
- tamsulosin 0.4 mg nightly

Allergies: penicillin (rash), sulfa drugs.
Signed: Elena Raskin, MD
"""
IDENTIFIERS = [
    "Maria",
    "Okafor",
    "03/14/1956",
    "00482913",
    "2024-05-02",
    "12 Elm Street",
    "62704",
    "201-3344",
    "Elena",
    "Raskin",
    "Tom",
]


def test_deidentify_removes_every_clinical_identifier_and_keeps_clinical_words() -> None:
    redacted, spans = deid.deidentify(NOTE)
    for identifier in IDENTIFIERS:
        assert identifier not in redacted, identifier
    kinds = deid.counts(spans)
    assert kinds["MRN"] == 1 and kinds["DOB"] == 1 and kinds["ADDRESS"] == 1
    assert kinds["PHONE"] == 1 and kinds["DATE"] == 1
    assert "[MRN]" in redacted and "[DOB]" in redacted and "Dr. [NAME]" in redacted
    # a year alone, clinical terms, drug names and a disease named after a person stay
    for kept in ("in 2023", "Alzheimer disease", "atrial fibrillation", "Coumadin 5mg", "68-year"):
        assert kept in redacted, kept


def test_without_the_clinical_rules_the_builtin_redactor_misses_them() -> None:
    redacted, _ = deid.deidentify(NOTE, clinical=False)
    assert "00482913" in redacted and "Maria Okafor" in redacted and "03/14/1956" in redacted
    assert "201-3344" not in redacted  # the built-in phone rule still works


def test_clinical_rules_are_redaction_rule_specs_with_sane_spans() -> None:
    for rule in deid.RULES:
        for start, end in rule.detect(NOTE):
            assert 0 <= start < end <= len(NOTE)
            assert NOTE[start:end].strip() == NOTE[start:end]


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("BID", "twice daily"),
        ("b.i.d.", "twice daily"),
        ("once a day", "once daily"),
        ("QHS", "at bedtime"),
        ("every 6 hours as needed", "every 6 hours as needed"),
        ("q4h PRN", "every 4 hours as needed"),
        ("PRN", "as needed"),
        ("three times a day", "three times daily"),
        ("weekly", "weekly"),
    ],
)
def test_frequencies_normalise(written: str, canonical: str) -> None:
    assert lexicon.normalise_frequency(written) == canonical


def test_doses_and_names_normalise() -> None:
    assert lexicon.normalise_dose("5mg") == "5 mg"
    assert lexicon.normalise_dose("800/160 MG") == "800/160 mg"
    assert lexicon.normalise_dose("20 IU") == "20 units"
    lex = lexicon.load()
    assert lex.generic("Coumadin") == "warfarin"
    assert lex.generic("ZOLOFT") == "sertraline"
    assert lex.generic("K-Dur") == "potassium chloride"
    assert lex.lookup("unicornium") is None


def test_rules_extract_medications_problems_and_allergies() -> None:
    lex = lexicon.load()
    redacted, _ = deid.deidentify(NOTE)
    got = extract.extract_rules(redacted, lex)
    meds = {(m.name, m.dose, m.frequency) for m in got.medications}
    assert meds == {
        ("warfarin", "5 mg", "once daily"),
        ("ibuprofen", "400 mg", "three times daily"),
    }
    assert got.problems == ["atrial fibrillation", "osteoarthritis of the knee"]
    assert got.allergies == ["penicillin", "sulfa drugs"]


def test_an_allergy_is_never_a_medication() -> None:
    lex = lexicon.load()
    got = extract.extract_rules("Allergies: aspirin.\nMeds: sertraline 50 mg daily", lex)
    assert [m.name for m in got.medications] == ["sertraline"]
    assert got.allergies == ["aspirin"]
    assert extract.extract_rules("Allergies: NKDA", lex).allergies == []


def test_combine_keeps_grounded_model_items_only() -> None:
    lex = lexicon.load()
    redacted, _ = deid.deidentify(NOTE)
    rules = extract.extract_rules(redacted, lex)
    model = extract.parse_llm(
        json.dumps(
            {
                "problems": ["atrial fibrillation", "diabetes"],
                "medications": [
                    {"name": "Tamsulosin", "dose": "0.4 mg", "frequency": "nightly"},
                    {"name": "unicornium", "dose": "5 mg", "frequency": "daily"},
                    {"name": "Advil", "dose": "800 mg", "frequency": "daily"},
                    {"name": "penicillin", "dose": "", "frequency": ""},
                ],
                "allergies": ["sulfa drugs", "peanuts"],
            }
        )
    )
    both = extract.combine(rules, model, redacted, lex)
    meds = {m.name: (m.dose, m.frequency, m.source) for m in both.medications}
    assert meds["tamsulosin"] == ("0.4 mg", "at bedtime", "llm")  # read from the note
    assert meds["ibuprofen"] == ("400 mg", "three times daily", "rules")  # the note wins
    assert "unicornium" not in meds and "penicillin" not in meds
    assert "diabetes" not in both.problems  # not in the note
    assert both.allergies == ["penicillin", "sulfa drugs"]


def test_the_extraction_schema_is_valid_and_cut_output_is_a_400() -> None:
    jsonschema.Draft202012Validator.check_schema(extract.SCHEMA)
    spec = extract.extraction_spec("note", 100)
    assert spec.params.structured is not None and spec.params.temperature == 0.0
    with pytest.raises(InvalidRequest, match="max_tokens"):
        spec.parse('{"problems": ["gou')


def test_interactions_match_brands_and_classes_once_per_pair() -> None:
    lex = lexicon.load()
    flags = interactions.check(["Coumadin", "aspirin", "Zoloft", "Ultram", "metformin"], lex)
    pairs = {f.drugs: f for f in flags}
    assert pairs[("warfarin", "aspirin")].rule == ("warfarin", "aspirin")  # the specific row
    assert pairs[("sertraline", "tramadol")].severity == "major"
    assert ("aspirin", "sertraline") in pairs  # ssri + nsaid (aspirin is both)
    assert not any("metformin" in f.drugs for f in flags)
    assert len(flags) == len(pairs)
    assert interactions.check(["lisinopril", "KCl"], lex)[0].rule == ("ace_inhibitor", "potassium")
    assert interactions.check(["warfarin", "Coumadin"], lex) == []  # the same drug twice


def test_summaries_always_carry_the_disclaimer() -> None:
    text = summary.with_disclaimer("A short summary.")
    assert text.endswith(summary.DISCLAIMER) and "not medical advice" in text
    assert summary.with_disclaimer(text) == text
    got = extract.Extraction(["gout"], [extract.Medication("allopurinol", "300 mg", "once daily")])
    assert "allopurinol 300 mg once daily" in summary.template_summary(got, [])


def test_the_shipped_notes_are_labelled_and_exact() -> None:
    path = Path(lexicon.data_dir()) / "notes.jsonl"
    notes = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(notes) >= 40
    for note in notes:
        assert note["phi"] and note["medications"] and note["reference_summary"]
        for span in note["phi"]:
            assert note["text"][span["start"] : span["end"]] == span["text"]
