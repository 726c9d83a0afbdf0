"""A seeded generator of scraped-web-like documents, for tests, the datatrove agreement
check and ``benchmarks/data.py`` (the code ships, its output does not).

Pages come from a few hundred made-up sites. Each site has its own navigation lines, cookie
banner, newsletter box and footer, repeated on every one of its pages, and a topic; bodies
are English prose assembled from phrase pools (stop words, varied sentence lengths,
citations, quotes). A share of pages is deliberately bad the way crawled pages are: one line
repeated, keyword lists, link farms, bullet-only lists, "read more..." teasers, code with
braces, lorem ipsum, "enable JavaScript" notices, other languages, exact copies and near
copies of earlier pages, and short stubs. The mix is in :data:`KINDS`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

_ADJ = [
    "new",
    "old",
    "local",
    "small",
    "large",
    "public",
    "private",
    "annual",
    "early",
    "late",
    "rural",
    "urban",
    "young",
    "senior",
    "digital",
    "green",
    "quiet",
    "busy",
    "modern",
    "historic",
    "regional",
    "national",
    "popular",
    "rare",
    "simple",
    "careful",
    "recent",
    "detailed",
    "common",
    "strong",
    "weak",
    "cheap",
    "expensive",
    "seasonal",
    "daily",
    "weekly",
    "northern",
    "southern",
    "eastern",
    "western",
    "independent",
]
_NOUN = [
    "council",
    "library",
    "bakery",
    "museum",
    "university",
    "club",
    "hospital",
    "school",
    "garden",
    "railway",
    "farmer",
    "architect",
    "ministry",
    "harbour",
    "budget",
    "survey",
    "lecture",
    "bridge",
    "festival",
    "market",
    "river",
    "station",
    "teacher",
    "student",
    "nurse",
    "driver",
    "engineer",
    "artist",
    "journalist",
    "neighbour",
    "family",
    "company",
    "programme",
    "report",
    "project",
    "policy",
    "study",
    "plan",
    "service",
    "network",
    "road",
    "factory",
    "village",
    "theatre",
    "park",
    "bicycle",
    "train",
    "bus",
    "ferry",
    "shop",
    "restaurant",
    "kitchen",
    "orchestra",
    "exhibition",
    "archive",
    "laboratory",
    "workshop",
    "committee",
    "tournament",
    "election",
    "harvest",
    "storm",
    "winter",
    "summer",
]
_VERB = [
    "announced",
    "opened",
    "reviewed",
    "recommended",
    "planned",
    "reported",
    "improved",
    "explained",
    "tested",
    "described",
    "collected",
    "published",
    "celebrated",
    "questioned",
    "reduced",
    "built",
    "discussed",
    "welcomed",
    "delayed",
    "funded",
    "approved",
    "rejected",
    "visited",
    "repaired",
    "measured",
    "organised",
    "supported",
    "criticised",
    "praised",
    "replaced",
    "expanded",
    "cancelled",
    "designed",
    "compared",
    "studied",
    "presented",
]
_PREP = [
    "for",
    "in",
    "near",
    "with",
    "after",
    "before",
    "during",
    "across",
    "behind",
    "beyond",
    "without",
    "under",
]
_NAMES = [
    "Anna",
    "Lee",
    "Omar",
    "Chen",
    "Sofia",
    "Patel",
    "Jonas",
    "Berg",
    "Maria",
    "Rossi",
    "Tom",
    "Evans",
    "Aiko",
    "Sato",
]
_CONNECT = [
    "However,",
    "In addition,",
    "According to the report,",
    "For example,",
    "Meanwhile,",
    "As a result,",
    "Still,",
    "At the same time,",
    "Finally,",
    "Later,",
]
_FOREIGN = {
    "de": [
        "Der Stadtrat hat nach einer langen Debatte den neuen Haushalt beschlossen.",
        "Die Bibliothek bietet jetzt auch am Sonntag Führungen für Familien an.",
        "Viele Pendler fahren wegen der hohen Preise wieder mit dem Fahrrad zur Arbeit.",
        "Im Herbst beginnt die Sanierung der alten Brücke über den Fluss.",
    ],
    "fr": [
        "Le conseil municipal a approuvé le nouveau budget après un long débat.",
        "La bibliothèque propose désormais des visites guidées le dimanche.",
        "Beaucoup de voyageurs prennent de nouveau le train pour aller au travail.",
        "Les travaux de rénovation du vieux pont commenceront en automne.",
    ],
    "es": [
        "El ayuntamiento aprobó el nuevo presupuesto tras un largo debate.",
        "La biblioteca ofrece ahora visitas guiadas los domingos por la mañana.",
        "Muchos viajeros vuelven a usar la bicicleta para ir al trabajo.",
        "Las obras de reparación del puente viejo empezarán en otoño.",
    ],
    "zh": [
        "市议会在经过长时间辩论后批准了新的预算。",
        "图书馆现在周日也为家庭提供导览服务。",
        "由于价格上涨，许多通勤者又开始骑自行车上班。",
        "旧桥的修复工程将于秋季开始。",
    ],
    "ru": [
        "Городской совет утвердил новый бюджет после долгих дебатов.",
        "Библиотека теперь проводит экскурсии для семей по воскресеньям.",
        "Многие жители снова ездят на работу на велосипеде.",
        "Ремонт старого моста начнётся осенью этого года.",
    ],
}
_NAV = [
    "Home | About | Contact | Blog",
    "Menu",
    "Skip to content",
    "Search",
    "Log in | Register",
    "Home » News » Local",
    "Categories: News, Events, Community",
]
_COOKIE = [
    "This website uses cookies to improve your experience.",
    "We use cookies to personalise content. By continuing you accept our cookie policy.",
    "Please read our privacy policy and terms of use.",
]
_NEWSLETTER = [
    "Subscribe to our newsletter for weekly updates.",
    "Sign up for our newsletter!",
    "Follow us on Facebook and Twitter",
    "Share this article:",
]
_KEYWORDS = [
    "cheap",
    "flights",
    "hotel",
    "deal",
    "best",
    "price",
    "online",
    "discount",
    "buy",
    "free",
    "shipping",
    "sale",
    "offer",
    "top",
    "review",
    "2024",
]

#: Kinds of page and their share of the corpus.
KINDS: dict[str, float] = {
    "article": 0.56,
    "repeated_line": 0.04,
    "keywords": 0.03,
    "links": 0.02,
    "bullets": 0.03,
    "teasers": 0.02,
    "code": 0.02,
    "lorem": 0.01,
    "javascript": 0.02,
    "foreign": 0.06,
    "exact_copy": 0.04,
    "near_copy": 0.04,
    "stub": 0.04,
    "hashtags": 0.02,
    "forum": 0.05,
}


class WebCorpus:
    """Pages of a seeded fake web; :meth:`documents` yields ``{"id", "text", "kind"}``."""

    def __init__(self, seed: int = 0, sites: int = 300) -> None:
        self.rng = random.Random(seed)
        self.sites = [self._site(n) for n in range(sites)]
        self._history: list[str] = []

    def _site(self, n: int) -> dict[str, Any]:
        rng = self.rng
        name = (
            f"{rng.choice(['North', 'Green', 'River', 'City', 'Blue', 'Old'])}"
            f"{rng.choice(['Gazette', 'Times', 'Journal', 'Post', 'Daily', 'Notes'])}{n}"
        )
        header = rng.sample(_NAV, rng.randint(0, 3))
        footer = [f"© 2024 {name}. All rights reserved."]
        if rng.random() < 0.6:
            footer.insert(0, rng.choice(_NEWSLETTER))
        if rng.random() < 0.5:
            header.append(rng.choice(_COOKIE))
        return {"name": name, "header": header, "footer": footer}

    def _np(self) -> str:
        rng = self.rng
        det = rng.choice(["the", "a", "the", "this", "their", "our", "every"])
        if rng.random() < 0.6:
            return f"{det} {rng.choice(_ADJ)} {rng.choice(_NOUN)}"
        if rng.random() < 0.15:
            return f"{rng.choice(_NAMES)} {rng.choice(_NAMES)}"
        return f"{det} {rng.choice(_NOUN)}"

    def sentence(self) -> str:
        """One English sentence from a small random grammar."""
        rng = self.rng
        s = f"{self._np()} {rng.choice(_VERB)} {self._np()}"
        for _ in range(rng.choices([0, 1, 2], [0.3, 0.5, 0.2])[0]):
            s += f" {rng.choice(_PREP)} {self._np()}"
        if rng.random() < 0.2:
            s += f" and {rng.choice(_VERB)} {self._np()}"
        if rng.random() < 0.1:
            s += f" in {rng.randint(1990, 2025)}"
        if rng.random() < 0.25:
            s = f"{rng.choice(_CONNECT)} {s}"
        s = s[0].upper() + s[1:]
        end = rng.choices([".", "!", "?", ". [1]"], [0.9, 0.03, 0.04, 0.03])[0]
        if rng.random() < 0.05:
            return f'"{s}," said {rng.choice(["a spokesperson", "the mayor", "Dr. Lee"])}.'
        return s + end

    def paragraph(self, low: int = 2, high: int = 6) -> str:
        """A paragraph of a few sentences on one line."""
        return " ".join(self.sentence() for _ in range(self.rng.randint(low, high)))

    def _body(self, kind: str) -> list[str]:
        rng = self.rng
        if kind == "article" or kind == "forum":
            paras = [self.paragraph() for _ in range(rng.randint(3, 9))]
            if kind == "forum":
                paras = [
                    f"{rng.choice(['Re:', 'Quote', 'Reply'])} {p}" if rng.random() < 0.3 else p
                    for p in paras
                ]
                paras += [rng.choice(["Thanks!", "+1", "Same here.", "lol"]) for _ in range(2)]
            return paras
        if kind == "repeated_line":
            line = self.sentence()
            return [line] * rng.randint(8, 30)
        if kind == "keywords":
            return [
                " ".join(rng.choice(_KEYWORDS) for _ in range(rng.randint(4, 9)))
                for _ in range(rng.randint(10, 30))
            ]
        if kind == "links":
            return [
                f"https://{rng.choice(_KEYWORDS)}{rng.randint(1, 999)}.example/"
                f"{rng.choice(_KEYWORDS)}"
                for _ in range(rng.randint(10, 40))
            ]
        if kind == "bullets":
            return [f"- {self._np()}" for _ in range(rng.randint(10, 30))]
        if kind == "teasers":
            return [f"{self.sentence()[:-1]}... Read more..." for _ in range(rng.randint(5, 12))]
        if kind == "code":
            return [
                self.paragraph(1, 3),
                "function init() { return load(config); }",
                "if (x > 0) { console.log(x); }",
                self.paragraph(),
            ]
        if kind == "lorem":
            return ["Lorem ipsum dolor sit amet, consectetur adipiscing elit.", self.paragraph()]
        if kind == "javascript":
            return [
                "Please enable JavaScript in your browser to view this page.",
                *[self.paragraph() for _ in range(rng.randint(2, 5))],
            ]
        if kind == "foreign":
            pool = _FOREIGN[rng.choice(sorted(_FOREIGN))]
            return [
                " ".join(rng.choice(pool) for _ in range(rng.randint(2, 5)))
                for _ in range(rng.randint(3, 8))
            ]
        if kind == "stub":
            return [self.sentence()]
        if kind == "hashtags":
            return [self.paragraph(), " ".join(f"#{rng.choice(_KEYWORDS)}" for _ in range(30))]
        raise ValueError(kind)

    def page(self, kind: str) -> str:
        """One page of ``kind`` (copies reuse an earlier page)."""
        rng = self.rng
        if kind in ("exact_copy", "near_copy") and self._history:
            text = rng.choice(self._history)
            if kind == "exact_copy":
                return text
            lines = text.split("\n")
            at = rng.randrange(len(lines))
            lines[at] = lines[at].replace(" the ", " a ", 1)
            return "\n".join(lines)
        if kind in ("exact_copy", "near_copy"):
            kind = "article"
        site = rng.choice(self.sites)
        body = self._body(kind)
        if rng.random() < 0.05:  # noise: stray whitespace and a control character
            body = [b.replace(" ", "  ", 1) + ("\x07" if rng.random() < 0.5 else "") for b in body]
        sep = "\n\n" if kind in ("article", "forum") and rng.random() < 0.5 else "\n"
        text = "\n".join([*site["header"], sep.join(body), *site["footer"]])
        if kind == "article":
            self._history.append(text)
            if len(self._history) > 500:
                self._history.pop(0)
        return text

    def documents(self, count: int | None = None) -> Iterator[dict[str, str]]:
        """``count`` pages (endless when None), each ``{"id", "text", "kind"}``."""
        kinds, weights = zip(*KINDS.items(), strict=True)
        n = 0
        while count is None or n < count:
            kind = self.rng.choices(kinds, weights)[0]
            yield {"id": f"doc-{n:08d}", "text": self.page(kind), "kind": kind}
            n += 1


def write_corpus(path: Path, megabytes: float, seed: int = 0) -> dict[str, int]:
    """Write about ``megabytes`` MB of pages to ``path`` (``.jsonl`` or ``.jsonl.zst``);
    return the documents and text bytes written."""
    docs = written = 0
    limit = int(megabytes * 1_000_000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw:
        sink: Any = (
            zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
            if path.name.endswith(".zst")
            else raw
        )
        for doc in WebCorpus(seed).documents():
            line = json.dumps({"id": doc["id"], "text": doc["text"]}, ensure_ascii=False) + "\n"
            sink.write(line.encode("utf-8"))
            docs += 1
            written += len(doc["text"].encode("utf-8"))
            if written >= limit:
                break
        if sink is not raw:
            sink.close()
    return {"documents": docs, "bytes": written}
