"""render_chat: the model's template with tools when it takes them, else the Hermes fallback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from llmeco.data.tokenizer import CHATML_TEMPLATE
from llmeco.errors import InvalidRequest
from llmeco.modeling.chat import (
    chat_template_source,
    format_tool_call,
    render_chat,
    template_supports_tools,
)
from llmeco.modeling.tool_parsers import detect_tool_parser, get_tool_parser

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALLED = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Rome"}},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
    {"role": "tool", "tool_call_id": "c2", "content": "22 C"},
]

#: A template in the style of tool-calling models: it renders ``tools`` itself.
NATIVE_TEMPLATE = (
    "{% if tools %}TOOLS={{ tools | map(attribute='function') | map(attribute='name') "
    "| join(',') }}\n{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }} "
    "{{ c.function.arguments.city }}</tool_call>{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tokenizer(template: str | None) -> PreTrainedTokenizerFast:
    """A throwaway word-level tokenizer carrying ``template`` (only its template matters)."""
    raw = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    tok.chat_template = template
    return tok


@pytest.fixture
def chatml() -> PreTrainedTokenizerFast:
    return tokenizer(CHATML_TEMPLATE)


def test_without_tools_it_is_the_template(chatml: PreTrainedTokenizerFast) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    assert render_chat(chatml, messages) == chatml.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def test_fallback_adds_a_system_message_with_the_tools(chatml: PreTrainedTokenizerFast) -> None:
    text = render_chat(chatml, [{"role": "user", "content": "Hi"}], tools=[WEATHER])
    system, user = text.split("<|im_end|>\n")[:2]
    assert system.startswith("<|im_start|>system\n# Tools\n")
    lines = system.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line) for line in lines] == [WEATHER]
    assert '<tool_call>\n{"name": "<function name>", "arguments": ' in system
    assert user == "<|im_start|>user\nHi"
    assert text.endswith("<|im_start|>assistant\n")


def test_fallback_appends_the_tools_to_an_existing_system_message(
    chatml: PreTrainedTokenizerFast,
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = render_chat(chatml, messages, tools=[WEATHER])
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert text.count("<|im_start|>system") == 1


def test_fallback_writes_calls_and_results_back(chatml: PreTrainedTokenizerFast) -> None:
    text = render_chat(chatml, CALLED, tools=[WEATHER], add_generation_prompt=False)
    turns = text.split("<|im_start|>")[2:]
    assert turns[1] == (
        "assistant\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
        "<|im_end|>\n"
    )
    # Both results share one user turn (templates may refuse two user turns in a row).
    assert turns[2] == (
        "user\n<tool_response>\n18 C\n</tool_response>\n"
        "<tool_response>\n22 C\n</tool_response><|im_end|>\n"
    )
    assert len(turns) == 3
    # What the history shows is what the hermes parser reads back.
    calls = get_tool_parser("hermes").parse(turns[1].removeprefix("assistant\n")).calls
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_weather", '{"city": "Rome"}'),
    ]


def test_a_history_with_calls_renders_without_tools(chatml: PreTrainedTokenizerFast) -> None:
    text = render_chat(chatml, CALLED)
    assert "# Tools" not in text and "<tool_call>" in text and "<tool_response>" in text


def test_assistant_text_comes_before_its_calls() -> None:
    assert format_tool_call("f", "not json") == (
        '<tool_call>\n{"name": "f", "arguments": "not json"}\n</tool_call>'
    )
    tok = tokenizer(CHATML_TEMPLATE)
    message = {**CALLED[1], "content": "Checking."}
    text = render_chat(tok, [CALLED[0], message], add_generation_prompt=False)
    assert "assistant\nChecking.\n<tool_call>" in text


def test_a_template_that_takes_tools_renders_them_itself() -> None:
    tok = tokenizer(NATIVE_TEMPLATE)
    assert template_supports_tools(chat_template_source(tok))
    text = render_chat(tok, CALLED[:2], tools=[WEATHER])
    # The template saw the tools, and each call's arguments as an object (not a string).
    assert text == (
        "TOOLS=get_weather\n<user>Weather in Paris and Rome?"
        "<assistant><tool_call>get_weather Paris</tool_call>"
        "<tool_call>get_weather Rome</tool_call><assistant>"
    )


@pytest.mark.parametrize(
    ("template", "takes_tools", "parser"),
    [
        (CHATML_TEMPLATE, False, "hermes"),
        (NATIVE_TEMPLATE, True, "hermes"),
        ("{% for t in tools %}{{ t }}{% endfor %}[TOOL_CALLS]", True, "mistral"),
        ("{{- '<|python_tag|>' }}{% if tools is not none %}x{% endif %}", True, "llama3_json"),
        ("{{ messages }} no tools here", False, "hermes"),
    ],
)
def test_template_detection(template: str, takes_tools: bool, parser: str) -> None:
    assert template_supports_tools(template) is takes_tools
    assert detect_tool_parser(tokenizer(template)) == parser


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "x"}],
    ],
)
def test_rendering_errors_are_invalid_requests(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidRequest, match="no chat template"):
        render_chat(tokenizer(None), messages)
    broken = tokenizer("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidRequest, match="roles must alternate") as info:
        render_chat(broken, messages)
    assert info.value.param == "messages"
