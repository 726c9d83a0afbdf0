"""SFT on tool-use conversations (OpenAI's fine-tuning format): loss on the assistant's calls
and answers only, rendered exactly as the engine renders them, and ``llmeco train sft`` on a
JSONL file of such records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.data.readers import read_file
from llmeco.errors import ConfigError
from llmeco.modeling.chat import render_chat
from llmeco.modeling.load import load_tokenizer
from llmeco.training.objectives import IGNORE, sft_example

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": "22 C, cloudy"},
    {"role": "assistant", "content": "Paris: 18 C and sunny. Rome: 22 C and cloudy."},
]
CALLS = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
)


def test_labels_cover_the_calls_and_the_answer_only(tiny_llama_dir: Path) -> None:
    tok = load_tokenizer(tiny_llama_dir)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    example = sft_example(CONVERSATION, tok, {im_end}, seq_len=2048, tools=TOOLS)
    assert example is not None
    ids, labels = example
    # The inputs are exactly what the engine renders for this conversation and tools.
    assert tok.decode(ids) == render_chat(
        tok, CONVERSATION, tools=TOOLS, add_generation_prompt=False
    )
    # Targets: each assistant turn's text (its calls, then the answer) with its end token;
    # the tool definitions, the question and the tool results carry no loss.
    spans, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            spans.append(tok.decode(current))
            current = []
    assert spans == [CALLS + "<|im_end|>", CONVERSATION[-1]["content"] + "<|im_end|>"]


def test_a_reply_that_only_calls_is_a_target(tiny_llama_dir: Path) -> None:
    tok = load_tokenizer(tiny_llama_dir)
    example = sft_example(CONVERSATION[:3], tok, {2}, seq_len=2048, tools=TOOLS)
    assert example is not None
    targets = [label for label in example[1] if label != IGNORE]
    assert tok.decode(targets) == CALLS + "<|im_end|>"


def test_a_template_error_is_a_config_error(tiny_llama_dir: Path) -> None:
    tok = load_tokenizer(tiny_llama_dir)
    tok.chat_template = "{{ raise_exception('no tools here') }}"
    with pytest.raises(ConfigError, match="no tools here"):
        sft_example(CONVERSATION, tok, {2}, seq_len=2048, tools=TOOLS)


def test_readers_keep_tools_calls_and_results(tmp_path: Path) -> None:
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATION, "tools": TOOLS}) + "\n")
    [record] = read_file(path)
    assert record["tools"] == TOOLS
    assistant, tool = record["messages"][2], record["messages"][3]
    assert assistant["content"] == "" and assistant["tool_calls"] == CONVERSATION[2]["tool_calls"]
    assert tool == {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"}


def test_prepare_keeps_tools_calls_and_results(tmp_path: Path) -> None:
    from llmeco.data.pipeline import PrepareOptions, load_records, prepare_dataset

    path = tmp_path / "tools.jsonl"
    only_calls = {"messages": CONVERSATION[:3], "tools": TOOLS}  # a reply that only calls
    path.write_text(
        json.dumps({"messages": CONVERSATION, "tools": TOOLS}) + "\n" + json.dumps(only_calls)
    )
    options = PrepareOptions(validation_fraction=0.0, near_dedup=False)
    prepare_dataset([path], tmp_path / "ds", options)
    records = load_records(tmp_path / "ds", "train")
    assert len(records) == 2 and all(r["tools"] == TOOLS for r in records)
    assert records[0]["messages"][2]["tool_calls"] == CONVERSATION[2]["tool_calls"]
    assert records[0]["messages"][3]["tool_call_id"] == "call_1"


def test_cli_sft_on_a_tool_use_file_runs(tmp_path: Path, tiny_llama_dir: Path) -> None:
    data = tmp_path / "tools.jsonl"
    rows = [
        {"messages": CONVERSATION, "tools": TOOLS},
        {"messages": CONVERSATION[:3], "tools": TOOLS},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    args = [
        "train", "sft",
        "--set", f"output_dir={out}", "--set", f"model.base={tiny_llama_dir}",
        "--set", f"data.dataset={data}", "--set", "max_steps=2",
        "--set", "batch_size=2", "--set", "seq_len=512",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"LLMECO_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    assert "saved model to" in result.output and (out / "model.safetensors").is_file()
