"""Audio in and out without a server: every container/codec decodes, every output format
round-trips, and each kind of bad upload is the typed error its HTTP status comes from."""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import pytest

from llmeco.apps.speech.audio_io import OUTPUT_FORMATS, OUTPUT_RATE, Encoder, decode, encode_all
from llmeco.apps.speech.captions import srt, vtt
from llmeco.apps.speech.protocol import Segment
from llmeco.apps.speech.tts import ESpeakSynthesizer
from llmeco.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia

RATE = 22_050


def tone(seconds: float, rate: int = RATE, freq: float = 440.0) -> bytes:
    """A sine tone as s16le mono PCM."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 12_000).astype("<i2").tobytes()


def wav_file(pcm: bytes, rate: int = RATE) -> bytes:
    """A plain RIFF/WAV file (sizes in its header), as the ``wave`` module writes it."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def container_file(pcm: bytes, fmt: str, codec: str, rate: int = 48_000) -> bytes:
    """``pcm`` (at RATE) in an FFmpeg container/codec the encoder does not offer (m4a, webm)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        resampler = av.AudioResampler(format=stream.codec_context.format.name, rate=rate)
        for f in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
def test_every_output_format_decodes_back_to_the_same_length(fmt: str) -> None:
    data = encode_all(tone(1.5), RATE, fmt)
    got = decode(data)
    assert got.sample_rate == 16_000
    assert got.duration == pytest.approx(1.5, abs=0.12)
    assert float(np.abs(got.samples).max()) > 0.2  # the tone survived, not silence


def test_pcm_is_raw_24khz_s16le() -> None:
    data = encode_all(tone(1.0), RATE, "pcm")
    assert len(data) / 2 == pytest.approx(OUTPUT_RATE, rel=0.01)
    assert OUTPUT_FORMATS["pcm"][3] == "audio/pcm"


@pytest.mark.parametrize(
    ("fmt", "codec", "container"),
    [("ipod", "aac", "m4a"), ("webm", "libopus", "webm"), ("ogg", "libopus", "ogg")],
)
def test_other_containers_decode(fmt: str, codec: str, container: str) -> None:
    got = decode(container_file(tone(1.0), fmt, codec))
    assert container in got.container
    assert got.duration == pytest.approx(1.0, abs=0.1)


def test_stereo_and_odd_rates_are_mixed_down_and_resampled() -> None:
    stereo = np.stack([np.frombuffer(tone(1.0, 44_100), "<i2")] * 2, axis=1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44_100)
        w.writeframes(stereo.astype("<i2").tobytes())
    got = decode(buf.getvalue(), sample_rate=16_000)
    assert got.samples.ndim == 1 and got.duration == pytest.approx(1.0, abs=0.02)


def test_encoder_streams_bytes_before_it_finishes() -> None:
    enc = Encoder("mp3", RATE)
    early = b"".join(enc.feed(tone(0.25)) for _ in range(8))
    assert early, "an encoder that holds everything until finish() cannot stream"
    assert decode(early + enc.finish()).duration == pytest.approx(2.0, abs=0.12)


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [
        (b"", InvalidRequest, "empty"),
        (b"hello, this is a text file and not audio at all\n" * 20, UnsupportedMedia, "not audio"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, UnsupportedMedia, "not audio"),
        (wav_file(tone(3.0))[: 44 + 20_000], InvalidRequest, "truncated"),
        (wav_file(b""), InvalidRequest, "no audio samples"),
    ],
    ids=["empty", "text", "png", "truncated-wav", "no-samples"],
)
def test_bad_uploads_are_typed_errors(data: bytes, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says) as caught:
        decode(data)
    assert getattr(caught.value, "param", None) == "file"


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
def test_too_long_is_a_413(fmt: str) -> None:
    data = wav_file(tone(5.0)) if fmt == "wav" else encode_all(tone(5.0), RATE, fmt)
    with pytest.raises(PayloadTooLarge, match="2 s"):
        decode(data, max_seconds=2)
    assert decode(data, max_seconds=6).duration == pytest.approx(5.0, abs=0.12)


@pytest.mark.parametrize("fmt", ["flac", "mp3", "aac"])
def test_truncated_or_corrupt_compressed_files_are_400s(fmt: str) -> None:
    data = encode_all(tone(3.0), RATE, fmt)
    for bad in (data[: len(data) // 3], data[:60]):
        with pytest.raises(InvalidRequest, match=r"truncated|corrupt") as caught:
            decode(bad)
        assert not isinstance(caught.value, UnsupportedMedia)


def test_unknown_output_format_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="response_format"):
        Encoder("ogg-vorbis", RATE)


def test_captions() -> None:
    segs = [Segment(0, 0.0, 1.25, " Hello there."), Segment(1, 1.25, 3661.5, " Bye.")]
    assert srt(segs) == (
        "1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n2\n00:00:01,250 --> 01:01:01,500\nBye.\n"
    )
    assert vtt(segs).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n")


def test_voices_map_openai_names_and_refuse_unknown_ones() -> None:
    tts = ESpeakSynthesizer()
    assert tts.voice("alloy").engine_voice == "en-us"
    assert tts.voice("EN-GB+f3").engine_voice == "en-gb+f3"
    ids = [v.id for v in tts.voices()]
    assert ids[:2] == ["alloy", "ash"] and "en-gb-x-rp" in ids
    for bad in ("bogus", "en-us+nope", "fr"):
        with pytest.raises(InvalidRequest, match="unknown voice"):
            tts.voice(bad)


def test_espeak_streams_pcm_and_stops_when_closed() -> None:
    tts = ESpeakSynthesizer()
    stream = tts.stream("Hello. " * 200, tts.voice("en-us"), 1.0)
    chunks = iter(stream)
    first = next(chunks)
    assert stream.sample_rate == RATE and len(first) % 2 == 0 and first
    stream.close()  # the worker is killed, not left running
    assert stream._proc.poll() is not None
