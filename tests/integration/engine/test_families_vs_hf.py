"""Every supported model family against Hugging Face ``generate``, token for token.

The same check as ``test_engine_vs_hf.py``'s tiny Llama: a 2-layer random-weight model of
each family (hidden 64, 4 query heads × 16, 2 KV heads, SmolLM2's tokenizer), saved as a
safetensors directory, served by the engine with a small token budget (long prompts are
chunked) while 8 prompts of staggered lengths arrive mid-generation; greedy outputs must
equal HF's. Norm weights are perturbed (so Gemma's ``1 + w`` and the q/k norms matter),
LM heads and routers drawn wide (peaked logits and decisive routing: no near-ties). Gemma
and Mistral attend within a 16-token window, well under the 120-token prompt, so sliding
layers are exercised in chunked prefill and in decode; MoE models route top-2 of 4 experts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from llmeco.engine.async_engine import AsyncEngine
from llmeco.engine.request import SamplingParams
from llmeco.errors import ConfigError
from llmeco.modeling.attention import AttentionBatch, PrefillSpan
from llmeco.modeling.decoder import build_model
from llmeco.modeling.families import family_spec
from llmeco.modeling.load import load_state_dict, load_tokenizer
from llmeco.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WINDOW = 16
MOE = {"num_experts_per_tok": 2, "moe_intermediate_size": 32}

#: model_type → config overrides beyond the shared tiny shape.
FAMILIES: dict[str, dict[str, Any]] = {
    "qwen2": {},
    "qwen3": {},
    "gemma2": {
        "sliding_window": WINDOW,
        "layer_types": ["sliding_attention", "full_attention"],
        "query_pre_attn_scalar": 24,
        "attn_logit_softcapping": 2.0,  # small: the cap really bends the scores
        "final_logit_softcapping": 5.0,
    },
    "gemma3_text": {
        "sliding_window": WINDOW,
        "layer_types": ["sliding_attention", "full_attention"],
        "query_pre_attn_scalar": 24,
    },
    "phi3": {
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
        }
    },
    "mistral": {"sliding_window": WINDOW},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2_moe": {"num_experts": 4, "shared_expert_intermediate_size": 64, **MOE},
    "qwen3_moe": {"num_experts": 4, "norm_topk_prob": True, **MOE},
}


def tiny_config(model_type: str, vocab: int) -> Any:
    """The family's transformers config at the shared tiny shape."""
    return AutoConfig.for_model(
        model_type,
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        **FAMILIES[model_type],
    )


def save_tiny(model_type: str, tokenizer: Any, path: Path) -> None:
    """A seeded random-weight model of ``model_type`` saved with the tokenizer in ``path``."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type, len(tokenizer)))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.2)
            elif name.endswith(("mlp.gate.weight", "block_sparse_moe.gate.weight")):
                param.normal_(0.0, 0.5)
            elif name.endswith(("q_proj.weight", "k_proj.weight", "qkv_proj.weight")):
                param.normal_(0.0, 0.3)  # sharp attention: soft-capping and masks matter
        model.lm_head.weight.normal_(0.0, 0.5)
    model.save_pretrained(path)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(path)


async def collect(
    engine: AsyncEngine, prompt: list[int], params: SamplingParams, rid: str
) -> list[int]:
    ids: list[int] = []
    async for out in engine.generate(prompt, params, rid):
        for d in out.deltas:
            ids.extend(d.token_ids)
    return ids


def hf_greedy(model: Any, prompt_ids: list[int], max_new: int, eos: list[int]) -> list[int]:
    out = model.generate(
        torch.tensor([prompt_ids]),
        attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos[0],
    )
    return [int(t) for t in out[0, len(prompt_ids) :]]


@pytest.fixture(scope="module")
def family_dir(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """Builds (once per family) the tiny model directory of a ``model_type``."""
    tokenizer = load_tokenizer(default_model_dir)
    built: dict[str, Path] = {}

    def get(model_type: str) -> Path:
        if model_type not in built:
            path = tmp_path_factory.mktemp(f"tiny-{model_type}")
            save_tiny(model_type, tokenizer, path)
            built[model_type] = path
        return built[model_type]

    return get


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
async def test_family_staggered_prompts_match_hf(
    model_type: str, family_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    path = family_dir(model_type)
    settings = Settings(
        home=tmp_path,
        kv_cache_tokens=2048,
        kv_block_size=8,
        max_num_batched_tokens=48,  # small budget: long prompts are chunked
        max_num_seqs=8,
        quantization="none",  # float32, as HF runs it (the CPU default quantizes)
    )
    engine = AsyncEngine.from_ref(str(path), settings)
    try:
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        gen = torch.Generator().manual_seed(3)
        lengths = [3, 17, 60, 1, 33, 90, 8, 120]
        prompts = [torch.randint(3, 1000, (n,), generator=gen).tolist() for n in lengths]
        params = SamplingParams(max_tokens=24, temperature=0.0)
        eos = list(engine.model_info.eos_token_ids)

        async def staggered(i: int, p: list[int]) -> list[int]:
            await asyncio.sleep(0.03 * i)  # arrive while earlier requests are mid-generation
            return await collect(engine, p, params, f"{model_type}-{i}")

        got = await asyncio.gather(*(staggered(i, p) for i, p in enumerate(prompts)))
        for n, p, ours in zip(lengths, prompts, got, strict=True):
            assert ours == hf_greedy(hf, p, 24, eos), f"{model_type}, prompt of {n} tokens"
        stats = engine.stats()
        assert stats.running == 0 and stats.kv_blocks_used == 0
    finally:
        await engine.shutdown()


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_prefill_logits_match_hf(model_type: str, family_dir: Callable[[str], Path]) -> None:
    """Scores, not just argmaxes: catches what greedy decoding cannot (final soft-capping)."""
    path = family_dir(model_type)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ours = build_model(hf.config, torch.device("cpu"), torch.float32)
    ours.load_hf_state_dict(load_state_dict(path, torch.device("cpu"), torch.float32))
    ids = torch.randint(3, 1000, (40,), generator=torch.Generator().manual_seed(5))
    n, d = ids.shape[0], ours.dims
    kv = torch.zeros(d.num_layers, 2, n, d.num_kv_heads, d.head_dim)
    batch = AttentionBatch(torch.arange(n), prefills=[PrefillSpan(0, n, 0, None)])
    with torch.inference_mode():
        got = ours.logits(ours(ids, torch.arange(n), batch, kv))
        want = hf(ids[None]).logits[0]
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)


def test_family_spec_reads_the_differences() -> None:
    vocab = 1000
    gemma2 = family_spec(tiny_config("gemma2", vocab))
    assert gemma2.windows == (WINDOW, None) and gemma2.attn_softcap == 2.0
    assert gemma2.embed_scale == 8.0 and gemma2.attn_scale == 24**-0.5
    assert gemma2.final_softcap == 5.0 and gemma2.activation == "gelu_tanh"
    gemma3 = family_spec(tiny_config("gemma3_text", vocab))
    assert gemma3.rope_keys == ("sliding_attention", "full_attention") and gemma3.qk_norm
    assert gemma3.attn_softcap is None and gemma3.final_softcap is None
    assert family_spec(tiny_config("qwen2", vocab)).qkv_bias
    assert family_spec(tiny_config("phi3", vocab)).rotary_dim == 8
    assert family_spec(tiny_config("mistral", vocab)).windows == (WINDOW, WINDOW)
    moe = family_spec(tiny_config("qwen2_moe", vocab)).moe
    assert moe is not None and (moe.num_experts, moe.top_k) == (4, 2)
    assert moe.shared_intermediate_size == 64 and moe.sparse_layers == {0, 1}


def test_unsupported_architecture_is_named_with_the_supported_list(
    default_model_dir: Path, tmp_path: Path
) -> None:
    config = AutoConfig.for_model("gpt2", n_layer=1, n_embd=32, n_head=2, vocab_size=100)
    config.architectures = ["GPT2LMHeadModel"]
    with pytest.raises(ConfigError, match=r"'gpt2'.*GPT2LMHeadModel.*gemma2.*qwen3_moe"):
        family_spec(config)
    # Served: the engine refuses it up front, naming the reference too.
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "gpt2")
    load_tokenizer(default_model_dir).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ConfigError, match=r"gpt2: model type 'gpt2'.*supported model types"):
        AsyncEngine.from_ref(str(tmp_path / "gpt2"), Settings(home=tmp_path / "home"))


def write_qwen2_gguf(model_dir: Path, out: Path, vocab: int) -> None:
    """The float32 weights of a tiny Qwen2 in ``model_dir`` as a GGUF file, with the first
    ``vocab`` tokens of the packaged SmolLM2 GGUF's tokenizer (merges filtered to them) —
    written with the ``gguf`` package the way llama.cpp's converter names Qwen2 tensors."""
    from gguf import GGUFReader, GGUFWriter
    from safetensors.torch import load_file

    from llmeco.modeling.gguf import default_gguf_path

    config = json.loads((model_dir / "config.json").read_text())
    writer = GGUFWriter(str(out), "qwen2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    source = GGUFReader(default_gguf_path())
    tokens = source.fields["tokenizer.ggml.tokens"].contents()[:vocab]
    kept = set(tokens)
    merges = [
        m
        for m in source.fields["tokenizer.ggml.merges"].contents()
        if all(p in kept for p in m.split(" ")) and m.replace(" ", "") in kept
    ]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(source.fields["tokenizer.ggml.token_type"].contents()[:vocab])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_chat_template(source.fields["tokenizer.chat_template"].contents())
    names = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
    layer = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    for key, tensor in load_file(model_dir / "model.safetensors").items():
        base, kind = key.rsplit(".", 1)
        if base in names:
            name = names[base]
        else:
            _, _, index, rest = base.split(".", 3)
            name = f"blk.{index}.{layer[rest]}"
        writer.add_tensor(f"{name}.{kind}", tensor.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


async def test_qwen2_gguf_round_trip_serves_like_hf(
    default_model_dir: Path, tmp_path: Path
) -> None:
    """A non-Llama GGUF (Qwen2, with q/k/v biases) converts through transformers' GGUF
    reader with its weights intact, and the engine serving the .gguf matches HF on the
    original checkpoint."""
    from safetensors.torch import load_file

    from llmeco.modeling.load import resolve_model

    vocab = 512
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(tiny_config("qwen2", vocab))
    with torch.no_grad():
        hf.lm_head.weight.normal_(0.0, 0.5)
    hf_dir = tmp_path / "hf"
    hf.save_pretrained(hf_dir)
    hf.eval()
    gguf_path = tmp_path / "tiny-qwen2.gguf"
    write_qwen2_gguf(hf_dir, gguf_path, vocab)

    settings = Settings(
        home=tmp_path / "home", kv_cache_tokens=1024, kv_block_size=8, quantization="none"
    )
    converted = resolve_model(str(gguf_path), settings).path
    assert json.loads((converted / "config.json").read_text())["model_type"] == "qwen2"
    original, roundtrip = (
        load_file(hf_dir / "model.safetensors"),
        load_file(converted / "model.safetensors"),
    )
    assert original.keys() == roundtrip.keys()
    assert all(torch.equal(original[k], roundtrip[k]) for k in original)

    engine = AsyncEngine.from_ref(str(gguf_path), settings)
    try:
        gen = torch.Generator().manual_seed(4)
        prompts = [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in (5, 40)]
        params = SamplingParams(max_tokens=16, temperature=0.0)
        got = await asyncio.gather(
            *(collect(engine, p, params, f"gguf-{i}") for i, p in enumerate(prompts))
        )
        eos = list(engine.model_info.eos_token_ids)
        for p, ours in zip(prompts, got, strict=True):
            assert ours == hf_greedy(hf, p, 16, eos)
    finally:
        await engine.shutdown()
