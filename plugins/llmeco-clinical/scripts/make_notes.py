# ruff: noqa: E501  (data tables: one record per line)
"""Write the synthetic labelled clinical notes (``data/notes.jsonl``).

Run from the package folder: ``python scripts/make_notes.py``. Seeded, so the file is the same
on every run. Every person, number and address is invented. Each note is built piece by piece
so the gold identifier spans (``phi``: start, end, kind) are exact; the gold problems,
medications (generic name, dose, canonical frequency) and allergies are the facts the note
was written from, and ``reference_summary`` is a plain-language summary of them written in a
different voice from the app's template summary.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "data" / "notes.jsonl"

FIRST_F = [
    "Maria",
    "Aisha",
    "Helen",
    "Grace",
    "Priya",
    "Ingrid",
    "Rosa",
    "Yuki",
    "Fatima",
    "Claire",
    "Nadia",
    "Joan",
]
FIRST_M = [
    "James",
    "Omar",
    "Peter",
    "Daniel",
    "Kofi",
    "Lars",
    "Mateo",
    "Hiroshi",
    "Samuel",
    "Tomasz",
    "Ravi",
    "Ethan",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Moreno",
    "Tanaka",
    "Haddad",
    "Brennan",
    "Kowalski",
    "Patel",
    "Nguyen",
    "Fischer",
    "Abernathy",
    "Castellano",
    "Delacroix",
    "Whitfield",
    "Oyelaran",
    "Varga",
    "Sorensen",
    "McAllister",
]
CLIN_FIRST = ["Elena", "Marcus", "Wei", "Sophie", "Adebayo", "Hannah", "Rafael", "Ingeborg"]
CLIN_LAST = ["Raskin", "Feldman", "Achebe", "Marchetti", "Holloway", "Szabo", "Kimura", "Lindgren"]
STREETS = [
    "Elm Street",
    "Oak Avenue",
    "Birch Lane",
    "Harbor Road",
    "Maple Drive",
    "Cedar Court",
    "Willow Way",
]
TOWNS = [
    ("Springfield", "IL", "62704"),
    ("Riverton", "OH", "44012"),
    ("Lakewood", "CO", "80226"),
    ("Fairview", "TN", "37062"),
    ("Ashford", "CT", "06278"),
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

# (problem, plain words, medications that go with it)
SCENARIOS = [
    ("atrial fibrillation", "an irregular heartbeat", [("warfarin", "5 mg", "once daily")]),
    ("atrial fibrillation", "an irregular heartbeat", [("apixaban", "5 mg", "twice daily")]),
    (
        "coronary artery disease",
        "narrowed heart arteries",
        [("aspirin", "81 mg", "once daily"), ("atorvastatin", "40 mg", "at bedtime")],
    ),
    ("hypertension", "high blood pressure", [("lisinopril", "10 mg", "once daily")]),
    ("hypertension", "high blood pressure", [("amlodipine", "5 mg", "once daily")]),
    (
        "heart failure",
        "a weak heart pump",
        [("furosemide", "40 mg", "twice daily"), ("spironolactone", "25 mg", "once daily")],
    ),
    ("type 2 diabetes", "type 2 diabetes", [("metformin", "500 mg", "twice daily")]),
    ("type 2 diabetes", "type 2 diabetes", [("insulin glargine", "20 units", "at bedtime")]),
    ("major depressive disorder", "depression", [("sertraline", "50 mg", "once daily")]),
    ("generalized anxiety disorder", "anxiety", [("escitalopram", "10 mg", "once daily")]),
    (
        "chronic low back pain",
        "long-term back pain",
        [("tramadol", "50 mg", "every 6 hours as needed")],
    ),
    (
        "osteoarthritis of the knee",
        "knee arthritis",
        [("ibuprofen", "400 mg", "three times daily")],
    ),
    ("osteoarthritis of the knee", "knee arthritis", [("naproxen", "500 mg", "twice daily")]),
    ("hypokalemia", "low potassium", [("potassium chloride", "20 mEq", "once daily")]),
    ("hyperlipidemia", "high cholesterol", [("simvastatin", "20 mg", "at bedtime")]),
    (
        "community-acquired pneumonia",
        "a chest infection",
        [("clarithromycin", "500 mg", "twice daily")],
    ),
    ("erectile dysfunction", "erectile dysfunction", [("sildenafil", "50 mg", "as needed")]),
    ("stable angina", "chest pain from the heart", [("nitroglycerin", "0.4 mg", "as needed")]),
    ("rheumatoid arthritis", "rheumatoid arthritis", [("methotrexate", "15 mg", "weekly")]),
    (
        "urinary tract infection",
        "a bladder infection",
        [("trimethoprim-sulfamethoxazole", "800/160 mg", "twice daily")],
    ),
    ("hypothyroidism", "an underactive thyroid", [("levothyroxine", "75 mcg", "every morning")]),
    ("gastroesophageal reflux disease", "acid reflux", [("omeprazole", "20 mg", "once daily")]),
    ("gout", "gout", [("allopurinol", "300 mg", "once daily")]),
    ("insomnia", "trouble sleeping", [("lorazepam", "1 mg", "at bedtime")]),
    ("asthma", "asthma", [("albuterol", "90 mcg", "every 4 hours as needed")]),
    ("chronic kidney disease", "reduced kidney function", [("losartan", "50 mg", "once daily")]),
    (
        "post-operative pain",
        "pain after surgery",
        [("oxycodone", "5 mg", "every 6 hours as needed")],
    ),
    ("peripheral neuropathy", "nerve pain", [("gabapentin", "300 mg", "three times daily")]),
]
# drugs the shipped lexicon does not know: only the model can find these
UNLISTED = [
    (
        "benign prostatic hyperplasia",
        "an enlarged prostate",
        ("tamsulosin", "0.4 mg", "at bedtime"),
    ),
    ("mild Alzheimer disease", "early memory loss", ("donepezil", "10 mg", "at bedtime")),
    ("migraine", "migraine headaches", ("sumatriptan", "50 mg", "as needed")),
    ("allergic rhinitis", "hay fever", ("montelukast", "10 mg", "once daily")),
    ("lupus", "lupus", ("hydroxychloroquine", "200 mg", "twice daily")),
]
BRANDS = {
    "warfarin": "Coumadin",
    "sertraline": "Zoloft",
    "atorvastatin": "Lipitor",
    "lisinopril": "Zestril",
    "ibuprofen": "Advil",
    "omeprazole": "Prilosec",
    "levothyroxine": "Synthroid",
    "apixaban": "Eliquis",
    "furosemide": "Lasix",
    "escitalopram": "Lexapro",
    "metformin": "Glucophage",
    "insulin glargine": "Lantus",
}
FREQ_STYLES = {
    "once daily": ["once daily", "daily", "QD", "once a day"],
    "twice daily": ["twice daily", "BID", "b.i.d.", "twice a day"],
    "three times daily": ["three times daily", "TID", "three times a day"],
    "at bedtime": ["at bedtime", "nightly", "QHS"],
    "every morning": ["every morning", "each morning"],
    "weekly": ["once weekly", "weekly"],
    "as needed": ["as needed", "PRN"],
    "every 6 hours as needed": ["every 6 hours as needed", "q6h PRN"],
    "every 4 hours as needed": ["every 4 hours as needed", "q4h PRN"],
}
ALLERGIES = [
    ["penicillin"],
    ["sulfa drugs"],
    ["codeine"],
    [],
    ["latex"],
    ["penicillin", "shellfish"],
    [],
    ["amoxicillin"],
]
REASONS = [
    "a routine follow-up",
    "worsening fatigue",
    "a medication review",
    "dizziness on standing",
    "shortness of breath on exertion",
    "a check-up after a recent fall",
    "poor sleep",
    "ankle swelling",
]
PLANS = [
    "Recheck blood tests in four weeks.",
    "Return to clinic in three months.",
    "Review in two weeks with a blood pressure diary.",
    "Refer to physiotherapy and follow up in six weeks.",
]


class Note:
    """Text built piece by piece, remembering where each identifier lands."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.phi: list[dict[str, object]] = []
        self.length = 0

    def add(self, text: str, kind: str | None = None) -> None:
        if kind:
            self.phi.append(
                {"start": self.length, "end": self.length + len(text), "kind": kind, "text": text}
            )
        self.parts.append(text)
        self.length += len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def date(rng: random.Random, year: int, style: int) -> str:
    m, d = rng.randint(1, 12), rng.randint(1, 28)
    return [
        f"{m:02d}/{d:02d}/{year}",
        f"{year}-{m:02d}-{d:02d}",
        f"{MONTHS[m - 1]} {d}, {year}",
        f"{d} {MONTHS[m - 1]} {year}",
    ][style]


def phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(1000, 9999)
    return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}"])


def med_line(rng: random.Random, name: str, dose: str, freq: str, style: int) -> str:
    written = BRANDS[name] if name in BRANDS and rng.random() < 0.35 else name
    if style % 2 == 0:
        written = written.capitalize() if written.islower() else written
    f = rng.choice(FREQ_STYLES[freq])
    d = dose.replace(" mg", "mg") if rng.random() < 0.3 else dose
    route = rng.choice(["", " PO", " by mouth"]) if "units" not in dose else " subcutaneously"
    return f"{written} {d}{route} {f}"


def make(i: int, rng: random.Random) -> dict[str, object]:
    female = rng.random() < 0.5
    first = rng.choice(FIRST_F if female else FIRST_M)
    last = rng.choice(LAST)
    cfirst, clast = rng.choice(CLIN_FIRST), rng.choice(CLIN_LAST)
    age = rng.randint(34, 86)
    visit_year = 2024
    scen = rng.sample(SCENARIOS, rng.choice([1, 2, 2, 3]))
    # dangerous pairs on purpose in about half the notes
    extra = rng.choice(
        [
            None,
            None,
            ("aspirin", "81 mg", "once daily"),
            ("ibuprofen", "400 mg", "as needed"),
            ("tramadol", "50 mg", "every 6 hours as needed"),
            ("potassium chloride", "20 mEq", "once daily"),
            ("clarithromycin", "500 mg", "twice daily"),
            None,
        ]
    )
    problems, plain, meds = [], [], []
    for prob, words, ms in scen:
        if prob not in problems:
            problems.append(prob)
            plain.append(words)
        for m in ms:
            if m[0] not in [x[0] for x in meds]:
                meds.append(m)
    if extra and extra[0] not in [x[0] for x in meds]:
        meds.append(extra)
    if rng.random() < 0.3:
        prob, words, med = rng.choice(UNLISTED)
        problems.append(prob)
        plain.append(words)
        meds.append(med)
    allergies = rng.choice(ALLERGIES)
    reason = rng.choice(REASONS)
    plan = rng.choice(PLANS)
    he, his = ("She", "her") if female else ("He", "his")
    title = "Mrs." if female and rng.random() < 0.5 else "Ms." if female else "Mr."
    style = i % 4
    n = Note()
    # header
    label = rng.choice(["Patient", "Patient Name", "Name", "Pt"])
    n.add(f"{label}: ")
    n.add(f"{first} {last}", "NAME")
    n.add("\n")
    n.add(rng.choice(["DOB: ", "Date of birth: ", "D.O.B. "]))
    n.add(date(rng, visit_year - age, style), "DOB")
    n.add("\n")
    n.add(rng.choice(["MRN: ", "MRN ", "Medical record number: ", "MR#: "]))
    n.add(
        rng.choice(
            [
                f"{rng.randint(0, 99999999):08d}",
                f"A{rng.randint(1000000, 9999999)}",
                f"{rng.randint(100, 999)}-{rng.randint(1000, 9999)}-{rng.randint(10, 99)}",
            ]
        ),
        "MRN",
    )
    n.add("\n")
    n.add(rng.choice(["Date of visit: ", "Visit date: ", "Seen on "]))
    n.add(date(rng, visit_year, (style + 1) % 4), "DATE")
    n.add("\n")
    if rng.random() < 0.8:
        n.add("Address: ")
        town, state, zipc = rng.choice(TOWNS)
        n.add(f"{rng.randint(2, 980)} {rng.choice(STREETS)}, {town}, {state} {zipc}", "ADDRESS")
        n.add("\n")
    if rng.random() < 0.8:
        n.add(rng.choice(["Phone: ", "Tel: ", "Contact number: "]))
        n.add(phone(rng), "PHONE")
        n.add("\n")
    n.add(rng.choice(["Attending: Dr. ", "Provider: Dr. ", "Seen by: Dr "]))
    n.add(f"{cfirst} {clast}", "NAME")
    n.add("\n\n")
    # narrative
    n.add("History: ")
    n.add(title + " ")
    n.add(last, "NAME")
    n.add(f" is a {age}-year-old {'woman' if female else 'man'} seen for {reason}. ")
    n.add(
        f"{he} has a history of {', '.join(problems[:-1]) + ' and ' if len(problems) > 1 else ''}{problems[-1]}. "
    )
    if rng.random() < 0.5:
        n.add(f"{his.capitalize()} daughter called on ")
        n.add(date(rng, visit_year, 2), "DATE")
        n.add(" to report the symptoms. ")
    if rng.random() < 0.35:  # a relative named in prose, without a title: harder to catch
        rel = rng.choice(["husband", "wife", "son", "daughter", "partner"])
        n.add(f"{his.capitalize()} {rel} ")
        n.add(rng.choice(FIRST_F + FIRST_M), "NAME")
        if rng.random() < 0.5:
            n.add(" ")
            n.add(last, "NAME")
        n.add(" joined the visit. ")
    if rng.random() < 0.2:  # a short local number in prose
        n.add("The pharmacy can be reached on ")
        n.add(f"555 0{rng.randint(100, 199)}", "PHONE")
        n.add(". ")
    if rng.random() < 0.15:
        n.add("E-mail on file: ")
        n.add(f"{first.lower()}.{last.lower()}@example.org", "EMAIL")
        n.add(". ")
    n.add("\n\n")
    n.add(rng.choice(["Problems:\n", "Assessment:\n", "Problem list:\n"]))
    for j, prob in enumerate(problems, 1):
        n.add(f"{j}. {prob}\n" if style % 2 else f"- {prob}\n")
    n.add("\n")
    n.add(rng.choice(["Medications:\n", "Current medications:\n", "Meds:\n"]))
    prose = meds[-1] if len(meds) > 1 and rng.random() < 0.4 else None
    for m in meds:
        if m is prose:
            continue
        n.add(("- " if style % 2 == 0 else "* ") + med_line(rng, *m, style=style) + "\n")
    n.add("\n")
    if prose is not None:
        n.add(f"{he} was started on {med_line(rng, *prose, style=1)} by Dr. ")
        n.add(clast, "NAME")
        n.add(". ")
    n.add(
        "Allergies: "
        + (", ".join(allergies) if allergies else rng.choice(["NKDA", "No known drug allergies"]))
        + ".\n"
    )
    n.add(f"Plan: {plan} ")
    if rng.random() < 0.5:
        n.add("Next appointment ")
        n.add(date(rng, visit_year + 1, 0), "DATE")
        n.add(".")
    n.add("\nSigned: ")
    n.add(f"{cfirst} {clast}", "NAME")
    n.add(", MD\n")

    med_words = ", ".join(f"{m[0]} {m[1]} {m[2]}" for m in meds)
    allergy_words = (
        f"{he} is allergic to {' and '.join(allergies)}."
        if allergies
        else f"{he} has no known drug allergies."
    )
    summary = (
        f"This {age}-year-old {'woman' if female else 'man'} came in for {reason}. "
        f"{he} lives with {' and '.join(plain)}. {he} takes {med_words}. {allergy_words} {plan}"
    )
    return {
        "id": f"note-{i:03d}",
        "text": n.text,
        "phi": n.phi,
        "problems": problems,
        "medications": [{"name": m[0], "dose": m[1], "frequency": m[2]} for m in meds],
        "allergies": allergies,
        "reference_summary": summary,
    }


def main() -> None:
    rng = random.Random(2121)
    notes = [make(i, rng) for i in range(48)]
    for note in notes:  # the spans must point at their text
        for span in note["phi"]:  # type: ignore[attr-defined]
            assert note["text"][span["start"] : span["end"]] == span["text"]  # type: ignore[index]
    OUT.write_text("".join(json.dumps(n) + "\n" for n in notes), encoding="utf-8")


if __name__ == "__main__":
    main()
