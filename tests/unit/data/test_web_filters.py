"""Gopher, C4 and FineWeb filters on the edge cases their published definitions name."""

from __future__ import annotations

from llmeco.data.c4 import C4Config, c4_filter
from llmeco.data.fineweb import FineWebConfig, fineweb_quality
from llmeco.data.gopher import (
    GopherQualityConfig,
    GopherRepetitionConfig,
    gopher_quality,
    gopher_repetition,
)
from llmeco.data.text import count_sentences, split_words

PROSE = [
    "The harbour committee approved the budget for the new ferry terminal after a long debate.",
    "Residents of the old town asked that the works be finished before the summer festival.",
    "According to the engineers, the bridge will be closed to cars for about six weeks.",
    "In the meantime, buses will take a longer route that goes through the northern district.",
    "The mayor said that the city had learned from the delays of the previous project.",
    "A public meeting with the planners is scheduled for Thursday evening in the library.",
]
ARTICLE = "\n".join(PROSE)
CHINESE = "市议会在经过长时间辩论后批准了新的预算。图书馆现在周日也为家庭提供导览服务。" * 5


def rep(text: str, **overrides: object) -> str | None:
    return gopher_repetition(
        text, split_words(text), GopherRepetitionConfig.model_validate(overrides)
    )


def quality(text: str, **overrides: object) -> str | None:
    return gopher_quality(text, split_words(text), GopherQualityConfig.model_validate(overrides))


def fineweb(text: str, **overrides: object) -> str | None:
    return fineweb_quality(text, split_words(text), FineWebConfig.model_validate(overrides))


def test_words_and_sentences_follow_spacy() -> None:
    # spaCy's English tokenizer (what datatrove uses) gives exactly these tokens.
    text = (
        "Don't stop—it's well-known that the U.S. costs $3.50, e.g. at https://x.com/a?b=1. Ok..."
    )
    assert split_words(text) == [
        "Do", "n't", "stop", "—", "it", "'s", "well", "-", "known", "that", "the", "U.S.",
        "costs", "$", "3.50", ",", "e.g.", "at", "https://x.com/a?b=1", ".", "Ok", "...",
    ]  # fmt: skip
    two = 'He said "hi." Then left... and 3.5 e.g. this! Yes?! No.'
    assert count_sentences(split_words(two)) == 4
    assert count_sentences([]) == 0
    assert count_sentences(split_words("One. Two. Three. Four."), stop_at=2) == 2


def test_repetition_keeps_prose_and_drops_one_repeated_line() -> None:
    assert rep(ARTICLE) is None
    assert rep("\n".join([PROSE[0]] * 10)) == "dup_line_frac"
    assert rep("") == "empty"


def test_repetition_paragraphs_lines_and_ngrams() -> None:
    paragraphs = "\n\n".join([PROSE[0], PROSE[1], PROSE[0], PROSE[0]])
    assert rep(paragraphs) == "dup_para_frac"
    # one long duplicate line among many short ones: few lines repeat, many characters do
    long_dup = "\n".join([*PROSE, PROSE[0] * 3, PROSE[0] * 3])
    assert rep(long_dup, dup_line_frac=None, dup_para_frac=None) == "dup_line_char_frac"
    spam = " ".join(["cheap flights"] * 40)
    assert rep(spam) == "top_2_gram"
    repeated = " ".join([PROSE[0], PROSE[2], PROSE[0], PROSE[3]])
    assert rep(repeated, top_n_grams=[]) == "duplicated_5_n_grams"
    assert rep(repeated, top_n_grams=[], dup_n_grams=[]) is None  # each rule can be turned off


def test_repetition_on_non_latin_script() -> None:
    # Without spaces each sentence is one "word" (as with datatrove's English tokenizer):
    # the page of two sentences said five times repeats its 2-grams; distinct ones pass.
    assert rep(CHINESE) == "top_2_gram"
    distinct = "\n".join(
        [
            "市议会批准了新的预算。", "许多通勤者又开始骑自行车上班。",
            "旧桥的修复工程将于秋季开始。", "图书馆现在周日也为家庭提供导览服务。",
            "博物馆下个月将举办一场关于古代地图的展览。", "农民们说今年的收成比去年好得多。",
            "新的公交线路将连接火车站和大学。", "许多居民希望公园在晚上开放更长时间。",
            "学校明年将开设更多的音乐课程。", "港口的渡轮每天早上七点出发。",
            "这家面包店的老板已经工作了三十年。", "暴风雨过后，志愿者们清理了海滩。",
        ]
    )  # fmt: skip
    assert rep(distinct) is None


def test_quality_rules() -> None:
    assert quality(ARTICLE) is None
    assert quality(PROSE[0]) == "gopher_short_doc"
    assert quality(CHINESE) == "gopher_short_doc"  # no spaces: few "words"
    assert quality(ARTICLE, min_doc_words=None, max_doc_words=20) == "gopher_long_doc"
    no_stop = " ".join(["Harbour committee approves budget quickly."] * 20)
    assert quality(no_stop) == "gopher_enough_stop_words"
    bullets = "\n".join(f"- {line}" for line in PROSE)
    assert quality(bullets) == "gopher_too_many_bullets"
    teasers = "\n".join(line[:-1] + "..." for line in PROSE)
    assert quality(teasers) == "gopher_too_many_end_ellipsis"
    assert quality(ARTICLE + " So… and… then… " * 8) == "gopher_too_many_ellipsis"
    hashes = ARTICLE + " " + " ".join(f"#tag{i}" for i in range(30))
    assert quality(hashes) == "gopher_too_many_hashes"
    numbers = ARTICLE + " " + " ".join(str(i) for i in range(200))
    assert quality(numbers) == "gopher_below_alpha_threshold"
    assert quality(" ".join(["a b c"] * 40)) == "gopher_below_avg_threshold"


def test_c4_line_rules_and_page_rules() -> None:
    page = "\n".join(
        [
            "Home | About | Contact",  # no terminal punctuation
            "",  # empty line
            "Yes it is.",  # three words is enough
            "Too short.",  # two words
            "Please enable JavaScript to see the comments.",
            "This site uses cookies to improve the experience.",
            "Read our privacy policy before you continue.",
            *[p.replace("budget", "budget[1]") for p in PROSE],
            "More stories coming soon...",  # an ellipsis is not terminal punctuation
        ]
    )
    text, reason, drops = c4_filter(page, C4Config())
    assert reason is None
    assert text.splitlines() == ["Yes it is.", *PROSE]  # citation marks cut out
    assert drops.lines == {
        "no_terminal_punct": 3,
        "too_few_words": 1,
        "javascript": 1,
        "policy": 2,
    }
    assert c4_filter(ARTICLE + "\nLorem ipsum dolor sit amet.", C4Config())[1] == "lorem_ipsum"
    assert c4_filter(ARTICLE + "\nCall init() { now }.", C4Config())[1] == "curly_bracket"
    assert c4_filter("\n".join(PROSE[:3]), C4Config())[1] == "too_few_sentences"
    assert c4_filter("", C4Config())[1] == "too_few_sentences"
    assert c4_filter(CHINESE, C4Config())[1] == "too_few_sentences"  # no terminal "."
    kept, reason, _ = c4_filter(page, C4Config(filter_policy=False, filter_javascript=False))
    assert reason is None and "JavaScript" in kept and "cookies" in kept


def test_fineweb_rules() -> None:
    assert fineweb(ARTICLE) is None
    assert fineweb("") == "empty" and fineweb("\n\n") == "empty"
    no_punct = "\n".join(line.rstrip(".") for line in PROSE)
    assert fineweb(no_punct) == "line_punct_ratio"
    assert fineweb(no_punct, line_punct_thr=0.0) is None
    short = "\n".join(["Short line here.", "Another short one.", "And a third.", PROSE[0]])
    assert fineweb(short) == "short_line_ratio"
    assert fineweb(ARTICLE + "\n" + PROSE[0]) == "char_dup_ratio"
    listy = "\n".join(f"Item {n}." for n in range(30))
    assert fineweb(listy, short_line_thr=1.0) == "list_ratio"
