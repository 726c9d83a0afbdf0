"""Write tool-use conversations for fine-tuning the default model on function calling.

The conversations are generated here from hand-written functions and question templates (none
come from BFCL, which ``benchmarks/tools.py`` measures on): each record is OpenAI's
fine-tuning format, ``{"messages": [...], "tools": [...]}``, where the assistant either calls
one tool, calls several in parallel, picks the right tool among several, or answers in plain
text because no offered tool fits — small talk, or a task none of the offered tools can do
(the mistake a tuned model makes most: calling the nearest tool anyway). Values are drawn
with a fixed seed, so the file is the same on every run.

    python benchmarks/tool_sft_data.py --out benchmarks/data/tool-sft.jsonl --n 2000
    llmeco train sft --model default --data benchmarks/data/tool-sft.jsonl --output runs/tools
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CITIES = ["Paris", "Berlin", "Tokyo", "Nairobi", "Lima", "Oslo", "Toronto", "Madrid", "Seoul"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP", "CHF", "CAD", "KES"]
UNITS = [("kilometers", "miles"), ("celsius", "fahrenheit"), ("kilograms", "pounds")]
NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli", "Farah", "Goran", "Hana"]
FOODS = ["pasta", "curry", "tacos", "ramen", "salad", "paella"]


@dataclass(frozen=True)
class Function:
    """A tool the model may be offered, and how to ask for a call of it."""

    name: str
    description: str
    properties: dict[str, Any]
    required: list[str]
    ask: Callable[[random.Random], tuple[str, dict[str, Any]]]

    def tool(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": self.properties,
                    "required": self.required,
                },
            },
        }


def _weather(r: random.Random) -> tuple[str, dict[str, Any]]:
    city = r.choice(CITIES)
    if r.random() < 0.5:
        unit = r.choice(["celsius", "fahrenheit"])
        return f"What's the weather in {city} right now, in {unit}?", {"city": city, "unit": unit}
    return f"Is it raining in {city} today?", {"city": city}


def _convert_currency(r: random.Random) -> tuple[str, dict[str, Any]]:
    amount = r.choice([5, 20, 75, 120, 1000, 2500])
    a, b = r.sample(CURRENCIES, 2)
    return f"How much is {amount} {a} in {b}?", {"amount": amount, "from": a, "to": b}


def _convert_units(r: random.Random) -> tuple[str, dict[str, Any]]:
    value = r.choice([3, 10, 42, 100, 250])
    a, b = r.choice(UNITS)
    if r.random() < 0.5:
        a, b = b, a
    return f"Convert {value} {a} to {b}.", {"value": value, "from_unit": a, "to_unit": b}


def _timer(r: random.Random) -> tuple[str, dict[str, Any]]:
    minutes = r.choice([1, 5, 10, 25, 45])
    label = r.choice(["tea", "laundry", "pasta", "break"])
    return f"Set a {minutes}-minute timer for the {label}.", {"minutes": minutes, "label": label}


def _email(r: random.Random) -> tuple[str, dict[str, Any]]:
    who = r.choice(NAMES)
    topic = r.choice(["the meeting", "lunch", "the report", "Friday's trip"])
    return (
        f"Email {who.lower()}@example.com that I'm running late for {topic}.",
        {"to": f"{who.lower()}@example.com", "subject": f"Late for {topic}",
         "body": f"I'm running late for {topic}."},
    )  # fmt: skip


def _recipe(r: random.Random) -> tuple[str, dict[str, Any]]:
    food = r.choice(FOODS)
    n = r.choice([2, 4, 6])
    return f"Find me a {food} recipe for {n} people.", {"dish": food, "servings": n}


def _stock(r: random.Random) -> tuple[str, dict[str, Any]]:
    ticker = r.choice(["ACME", "GLOBX", "INITECH", "UMBR", "STARK"])
    return f"What's the latest price of {ticker} stock?", {"ticker": ticker}


def _area(r: random.Random) -> tuple[str, dict[str, Any]]:
    w, h = r.choice([2, 3, 7, 12]), r.choice([4, 5, 9, 15])
    return f"What is the area of a rectangle {w} by {h}?", {"width": w, "height": h}


def _translate(r: random.Random) -> tuple[str, dict[str, Any]]:
    text = r.choice(["good morning", "thank you very much", "where is the station?"])
    lang = r.choice(["French", "German", "Spanish", "Japanese"])
    return f'Translate "{text}" into {lang}.', {"text": text, "target_language": lang}


def _book(r: random.Random) -> tuple[str, dict[str, Any]]:
    city = r.choice(CITIES)
    nights = r.choice([1, 2, 3, 5])
    guests = r.choice([1, 2, 4])
    return (
        f"Book a hotel in {city} for {nights} nights for {guests} guests.",
        {"city": city, "nights": nights, "guests": guests},
    )


def _str(desc: str, enum: list[str] | None = None) -> dict[str, Any]:
    return {"type": "string", "description": desc, **({"enum": enum} if enum else {})}


def _num(desc: str, kind: str = "integer") -> dict[str, Any]:
    return {"type": kind, "description": desc}


FUNCTIONS = [
    Function(
        "get_weather",
        "Current weather for a city.",
        {"city": _str("City name"), "unit": _str("Temperature unit", ["celsius", "fahrenheit"])},
        ["city"],
        _weather,
    ),
    Function(
        "convert_currency",
        "Convert an amount between currencies at today's rate.",
        {
            "amount": _num("Amount to convert", "number"),
            "from": _str("ISO code to convert from"),
            "to": _str("ISO code to convert to"),
        },
        ["amount", "from", "to"],
        _convert_currency,
    ),
    Function(
        "convert_units",
        "Convert a value from one unit to another.",
        {
            "value": _num("The value", "number"),
            "from_unit": _str("Unit of the value"),
            "to_unit": _str("Unit wanted"),
        },
        ["value", "from_unit", "to_unit"],
        _convert_units,
    ),
    Function(
        "set_timer",
        "Start a countdown timer.",
        {"minutes": _num("Length in minutes"), "label": _str("What the timer is for")},
        ["minutes"],
        _timer,
    ),
    Function(
        "send_email",
        "Send an email.",
        {
            "to": _str("Recipient address"),
            "subject": _str("Subject line"),
            "body": _str("Message text"),
        },
        ["to", "subject", "body"],
        _email,
    ),
    Function(
        "find_recipe",
        "Search recipes by dish and number of servings.",
        {"dish": _str("Dish to cook"), "servings": _num("How many people")},
        ["dish"],
        _recipe,
    ),
    Function(
        "get_stock_price",
        "Latest trading price of a stock.",
        {"ticker": _str("Ticker symbol")},
        ["ticker"],
        _stock,
    ),
    Function(
        "rectangle_area",
        "Area of a rectangle.",
        {"width": _num("Width", "number"), "height": _num("Height", "number")},
        ["width", "height"],
        _area,
    ),
    Function(
        "translate_text",
        "Translate text into another language.",
        {"text": _str("Text to translate"), "target_language": _str("Language to translate into")},
        ["text", "target_language"],
        _translate,
    ),
    Function(
        "book_hotel",
        "Book a hotel room.",
        {
            "city": _str("City"),
            "nights": _num("Number of nights"),
            "guests": _num("Number of guests"),
        },
        ["city", "nights", "guests"],
        _book,
    ),
]

SMALL_TALK = [
    ("Hi! How are you today?", "I'm doing well, thank you! How can I help you?"),
    ("Tell me a fun fact about octopuses.", "Octopuses have three hearts and blue blood."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    (
        "Can you write a haiku about rain?",
        "Soft rain on the roof,\nthe streets shine,\nthe city sleeps.",
    ),
    ("Who wrote Pride and Prejudice?", "Pride and Prejudice was written by Jane Austen."),
    ("What's 7 times 8?", "7 times 8 is 56."),
    ("Thanks, that's all!", "You're welcome! Have a great day."),
]


def _call(fn: Function, args: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "id": f"call_{i}",
        "type": "function",
        "function": {"name": fn.name, "arguments": json.dumps(args)},
    }


NO_TOOL = [
    "None of the tools I have can {what}, so I can't do that here.",
    "I can't {what} with the tools available to me.",
    "Sorry, I have no tool to {what}. I can help with: {offered}.",
]


#: What each function does, as the end of "I can't …" / "I can help with …".
TASKS = {
    "get_weather": "look up the weather",
    "convert_currency": "convert currencies",
    "convert_units": "convert units",
    "set_timer": "set timers",
    "send_email": "send emails",
    "find_recipe": "find recipes",
    "get_stock_price": "look up stock prices",
    "rectangle_area": "compute areas",
    "translate_text": "translate text",
    "book_hotel": "book hotels",
}


def _declines(fn: Function, offered: list[Function], r: random.Random) -> str:
    names = ", ".join(TASKS[f.name] for f in offered)
    return r.choice(NO_TOOL).format(what=TASKS[fn.name], offered=names)


def conversation(r: random.Random) -> dict[str, Any]:
    """One record: a single call, a parallel pair, a pick among several, or no call."""
    kind = r.choices(["single", "parallel", "pick", "none", "unfit"], weights=[4, 2, 3, 1, 2])[0]
    if kind == "unfit":
        fn = r.choice(FUNCTIONS)
        offered = r.sample([f for f in FUNCTIONS if f is not fn], r.randint(1, 3))
        question, _ = fn.ask(r)
        return {
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": _declines(fn, offered, r)},
            ],
            "tools": [f.tool() for f in offered],
        }
    if kind == "none":
        offered = r.sample(FUNCTIONS, r.randint(1, 3))
        question, answer = r.choice(SMALL_TALK)
        return {
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ],
            "tools": [f.tool() for f in offered],
        }
    fn = r.choice(FUNCTIONS)
    others = r.sample([f for f in FUNCTIONS if f is not fn], 3 if kind == "pick" else 0)
    offered = [fn, *others]
    r.shuffle(offered)
    question, args = fn.ask(r)
    calls = [_call(fn, args, 0)]
    if kind == "parallel":
        second, args2 = fn.ask(r)
        while args2 == args:
            second, args2 = fn.ask(r)
        question = f"{question.rstrip('?.')} and also: {second[0].lower()}{second[1:]}"
        calls.append(_call(fn, args2, 1))
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": calls},
        ],
        "tools": [f.tool() for f in offered],
    }


def main() -> None:
    """Write ``--n`` conversations to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/tool-sft.jsonl"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    r = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for _ in range(args.n):
            f.write(json.dumps(conversation(r)) + "\n")
    print(json.dumps({"written": args.n, "path": str(args.out)}))


if __name__ == "__main__":
    main()
