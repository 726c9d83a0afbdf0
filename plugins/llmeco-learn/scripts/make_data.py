# ruff: noqa: E501  (data tables: one record per line)
"""Write the shipped content library (``data/library/*.md``) and synthetic cohort
(``data/cohort.jsonl``).

Run from the package folder: ``python scripts/make_data.py``. Seeded: the same files on every
run. Each learner has a latent ability per topic; the topics with a low ability are their
*weak topics* (the evaluation's ground truth). Their history is a set of exercises with
scores drawn from ability minus difficulty plus noise, so weak topics show up as low scores
more often than not, but not always.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "data"

# topic -> three levels -> (lesson title, lesson text, exercise title, exercise text)
LIBRARY: dict[str, list[tuple[str, str, str, str]]] = {
    "fractions": [
        (
            "What a fraction is",
            "A fraction names part of a whole: the denominator says into how many equal parts the whole is cut, the numerator how many of them we take. Three quarters is 3 of 4 equal slices.",
            "Name the fraction",
            "A pizza is cut into 8 equal slices and you eat 3. Write the fraction of the pizza you ate, and the fraction that is left.",
        ),
        (
            "Adding fractions",
            "To add fractions with different denominators, rewrite both over a common denominator, then add the numerators: 1/3 + 1/4 = 4/12 + 3/12 = 7/12.",
            "Add and simplify",
            "Work out 2/5 + 3/10 and 5/6 - 1/4, giving each answer as a fraction in lowest terms.",
        ),
        (
            "Dividing fractions",
            "Dividing by a fraction is multiplying by its reciprocal: (3/4) / (2/5) = (3/4) x (5/2) = 15/8. Mixed numbers become improper fractions first.",
            "Mixed-number division",
            "Compute 2 1/3 divided by 3/4, and explain why dividing by a fraction smaller than one makes the result larger.",
        ),
    ],
    "linear-equations": [
        (
            "Solving one-step equations",
            "An equation is a balance: do the same to both sides. To solve x + 7 = 12 subtract 7 from both sides, so x = 5.",
            "One-step equations",
            "Solve for x: x - 4 = 9, 3x = 21 and x / 5 = 6.",
        ),
        (
            "Two-step equations",
            "Undo addition first, then multiplication: 4x + 3 = 19 gives 4x = 16 and x = 4. Check by substituting back into the equation.",
            "Equations with brackets",
            "Solve 3(x - 2) = 2x + 5 and 5 - 2x = x - 7, checking each solution.",
        ),
        (
            "Simultaneous linear equations",
            "Two linear equations in x and y can be solved by elimination: scale them so one variable cancels when the equations are added or subtracted.",
            "Solve a system",
            "Solve the system 2x + 3y = 12 and x - y = 1 by elimination, then by substitution.",
        ),
    ],
    "geometry": [
        (
            "Perimeter and area of rectangles",
            "The perimeter of a rectangle is twice length plus width; its area is length times width, measured in square units.",
            "Rectangle measurements",
            "A garden is 6 m long and 4 m wide. Find its perimeter and its area.",
        ),
        (
            "Triangles and circles",
            "A triangle's area is half base times height. A circle's circumference is 2 pi r and its area pi r squared.",
            "Area of shapes",
            "Find the area of a triangle with base 10 cm and height 7 cm, and of a circle with radius 3 cm.",
        ),
        (
            "Pythagoras' theorem",
            "In a right-angled triangle the square on the hypotenuse equals the sum of the squares on the other two sides: a^2 + b^2 = c^2.",
            "Right triangles",
            "A ladder 5 m long leans on a wall with its foot 3 m from the wall. How high up the wall does it reach?",
        ),
    ],
    "probability": [
        (
            "Chance as a number",
            "A probability is a number from 0 (impossible) to 1 (certain). For equally likely outcomes it is favourable outcomes divided by all outcomes.",
            "Dice and coins",
            "What is the probability of rolling an even number on a fair six-sided die? Of a coin landing heads twice in a row?",
        ),
        (
            "Independent and dependent events",
            "For independent events multiply probabilities. Drawing cards without replacement makes events dependent: the second draw's odds change.",
            "Drawing marbles",
            "A bag has 3 red and 2 blue marbles. Two are drawn without replacement. What is the probability both are red?",
        ),
        (
            "Conditional probability and Bayes",
            "Bayes' rule turns P(B given A) into P(A given B): P(A|B) = P(B|A) P(A) / P(B). It explains why rare diseases give many false positive tests.",
            "Medical test puzzle",
            "A disease affects 1% of people; a test detects it 95% of the time with a 5% false positive rate. Find the chance a positive tester is ill.",
        ),
    ],
    "statistics": [
        (
            "Mean, median and mode",
            "The mean adds the values and divides by how many there are; the median is the middle value once sorted; the mode is the most frequent value.",
            "Summarise a data set",
            "For the test scores 4, 7, 7, 8, 10, 12 find the mean, median and mode.",
        ),
        (
            "Spread: range and standard deviation",
            "The range is largest minus smallest. The standard deviation measures the typical distance of values from the mean.",
            "Compare variability",
            "Two classes both average 70 marks; one has standard deviation 5, the other 15. Describe what that says about each class.",
        ),
        (
            "Correlation and regression",
            "A scatter plot shows how two variables move together; the correlation coefficient r ranges from -1 to 1, and a regression line predicts one from the other.",
            "Fit a trend line",
            "Given hours studied and exam marks for ten students, sketch the scatter plot, estimate r and interpret the slope of the regression line.",
        ),
    ],
    "python-loops": [
        (
            "The for loop",
            "In Python a for loop repeats a block for each item of a sequence: for name in names: print(name). range(5) gives 0 to 4.",
            "Print a sequence",
            "Write a Python for loop that prints the numbers 1 to 10, then one that prints every item of a list of fruits.",
        ),
        (
            "While loops and break",
            "A while loop repeats while a condition is true; break leaves the loop early and continue skips to the next iteration.",
            "Guessing game loop",
            "Write a Python while loop that keeps asking for a guess until the user types the secret number, using break.",
        ),
        (
            "Nested loops and comprehensions",
            "Loops can nest, for example to walk a grid. A list comprehension builds a list in one expression: [x * x for x in range(10) if x % 2 == 0].",
            "Multiplication table",
            "Use nested Python loops to print a 10 by 10 multiplication table, then rebuild it as a nested list comprehension.",
        ),
    ],
    "python-functions": [
        (
            "Defining a function",
            "def greet(name): return 'Hello ' + name defines a reusable Python function with one parameter; calling greet('Ada') returns the greeting.",
            "Write your first function",
            "Write a Python function square(n) that returns n times n, and call it with three different numbers.",
        ),
        (
            "Arguments, defaults and return values",
            "Python functions take positional and keyword arguments, parameters can have default values, and return can hand back several values as a tuple.",
            "Default parameters",
            "Write a Python function power(base, exponent=2) and call it with and without the exponent keyword argument.",
        ),
        (
            "Recursion and higher-order functions",
            "A recursive function calls itself on a smaller input until a base case. Functions are values: map, filter and sorted(key=...) take functions as arguments.",
            "Recursive factorial",
            "Write a recursive Python function factorial(n), then use sorted with a key function to order words by their length.",
        ),
    ],
    "sql-queries": [
        (
            "SELECT and WHERE",
            "SQL's SELECT picks columns from a table and WHERE filters rows: SELECT name FROM customers WHERE country = 'France'.",
            "Filter a table",
            "Write a SQL query listing the title and price of every book in the books table that costs less than 10.",
        ),
        (
            "Sorting and aggregating",
            "ORDER BY sorts result rows; GROUP BY with COUNT, SUM or AVG aggregates rows per group, and HAVING filters groups.",
            "Sales per region",
            "Write a SQL query giving the total sales amount per region from the orders table, largest first, only regions above 1000.",
        ),
        (
            "Joins across tables",
            "An INNER JOIN matches rows of two tables on a key; a LEFT JOIN keeps every row of the left table even without a match.",
            "Customers without orders",
            "Write a SQL query with a LEFT JOIN that finds every customer who has never placed an order.",
        ),
    ],
    "grammar": [
        (
            "Nouns, verbs and adjectives",
            "A noun names a thing, a verb says what happens and an adjective describes a noun: in 'the red fox runs', fox is a noun, runs a verb, red an adjective.",
            "Tag the words",
            "Label each word of the English sentence 'The tired dog slept under a wooden table' as noun, verb, adjective or other.",
        ),
        (
            "Subject-verb agreement",
            "In English a singular subject takes a singular verb and a plural subject a plural one: 'the list of items is long', not 'are long'.",
            "Fix the agreement",
            "Correct the verbs in these English sentences: 'Each of the students have a book.' 'The team are winning.'",
        ),
        (
            "Clauses and punctuation",
            "Join two independent English clauses with a semicolon or a comma plus a conjunction; a comma alone makes a comma splice.",
            "Repair comma splices",
            "Rewrite these English sentences without comma splices: 'It rained, we stayed inside.' 'She studied hard, she passed.'",
        ),
    ],
}
TOPICS = list(LIBRARY)


def write_library() -> list[dict[str, object]]:
    """One Markdown file per item with a small front matter; returns the items."""
    out = ROOT / "library"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.md"):
        old.unlink()
    items: list[dict[str, object]] = []
    for topic, levels in LIBRARY.items():
        for level, (ltitle, ltext, etitle, etext) in enumerate(levels, start=1):
            for kind, title, text in (("lesson", ltitle, ltext), ("exercise", etitle, etext)):
                item_id = f"{topic}-{level}-{kind}"
                body = (
                    f"---\nid: {item_id}\ntitle: {title}\ntopic: {topic}\n"
                    f"difficulty: {level}\nkind: {kind}\n---\n{text}\n"
                )
                (out / f"{item_id}.md").write_text(body, encoding="utf-8")
                items.append({"id": item_id, "topic": topic, "difficulty": level, "kind": kind})
    return items


def write_cohort(items: list[dict[str, object]], n: int = 60, seed: int = 21) -> None:
    """``n`` learners: goals, level, latent weak topics, and a scored exercise history."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        weak = rng.sample(TOPICS, rng.choice([1, 2, 2, 3]))
        ability = {
            t: (rng.uniform(0.1, 1.2) if t in weak else rng.uniform(2.2, 3.4)) for t in TOPICS
        }
        level = rng.choice([1, 1, 2, 2, 3])
        studied = rng.sample(TOPICS, rng.randint(4, 7))
        studied = sorted(set(studied) | set(rng.sample(weak, max(1, len(weak) - 1))))
        history = []
        for topic in studied:
            top = rng.randint(1, 3)
            for item in items:
                if item["topic"] != topic or int(item["difficulty"]) > top:  # type: ignore[call-overload]
                    continue
                if rng.random() < 0.45:
                    continue
                margin = ability[topic] - int(item["difficulty"]) + 0.5  # type: ignore[call-overload]
                score = max(0.0, min(1.0, 0.5 + 0.35 * margin + rng.gauss(0, 0.15)))
                history.append({"item_id": item["id"], "score": round(score, 2)})
        rng.shuffle(history)
        goals = [f"get better at {t.replace('-', ' ')}" for t in rng.sample(TOPICS, 2)]
        lines.append(
            json.dumps(
                {
                    "learner_id": f"learner-{i:03d}",
                    "level": level,
                    "goals": goals,
                    "weak_topics": sorted(weak),
                    "history": history,
                }
            )
        )
    (ROOT / "cohort.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_cohort(write_library())
