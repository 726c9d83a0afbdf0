"""Audio in and out: decode any common container/codec to mono float32 at the engine's rate,
and encode synthesised 16-bit PCM to the formats OpenAI's speech route offers, chunk by chunk.

Decoding uses PyAV (FFmpeg's libraries, shipped inside the ``av`` wheel), entirely in memory:
no temporary file is ever written, so a refused upload leaves nothing behind. Every problem
is a typed error the HTTP edge maps to a clear status:

=========================================  ======  ==============================
problem                                    status  exception
=========================================  ======  ==============================
empty upload                               400     InvalidRequest
not audio / unrecognised container         415     UnsupportedMedia
truncated or corrupt stream                400     InvalidRequest
longer than the duration limit             413     PayloadTooLarge
=========================================  ======  ==============================

Encoding writes to a sink that cannot seek, so FFmpeg's muxers emit a streamable header
(WAV and FLAC with "unknown length") and each chunk of PCM becomes bytes at once: the speech
route streams them as they come.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from llmeco.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia

#: Output formats of ``/v1/audio/speech`` → (FFmpeg container, codec, sample format, MIME).
#: ``pcm`` is raw 16-bit little-endian mono with no container (OpenAI's definition).
OUTPUT_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "mp3": ("mp3", "libmp3lame", "s16p", "audio/mpeg"),
    "opus": ("ogg", "libopus", "s16", "audio/ogg"),
    "aac": ("adts", "aac", "fltp", "audio/aac"),
    "flac": ("flac", "flac", "s16", "audio/flac"),
    "wav": ("wav", "pcm_s16le", "s16", "audio/wav"),
    "pcm": ("", "", "s16", "audio/pcm"),
}

#: Sample rate of every synthesised output (OpenAI's ``pcm`` is 24 kHz; Opus accepts it).
OUTPUT_RATE = 24_000

#: A decoded stream shorter than this share of its declared duration is called truncated.
_TRUNCATED_SHARE = 0.9


@dataclass(frozen=True)
class Decoded:
    """Mono float32 samples in [-1, 1] at ``sample_rate``, and what the upload was."""

    samples: np.ndarray
    sample_rate: int
    #: Container format FFmpeg recognised (``wav``, ``mp3``, ``ogg``, ``mov,mp4,m4a,…``).
    container: str
    #: Codec of the audio stream (``pcm_s16le``, ``mp3``, ``opus``, ``aac``, …).
    codec: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def decode(data: bytes, *, sample_rate: int = 16_000, max_seconds: float = 600.0) -> Decoded:
    """Decode an uploaded audio file (any container/codec FFmpeg reads) to mono float32.

    Resamples to ``sample_rate`` (what the recogniser needs). Raises ``InvalidRequest`` for an
    empty, truncated or corrupt file, ``UnsupportedMedia`` for one that is not audio, and
    ``PayloadTooLarge`` past ``max_seconds`` (checked on the declared length first, then while
    decoding, so an over-long file is refused without decoding all of it).
    """
    if not data:
        raise InvalidRequest("the uploaded file is empty", param="file")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.InvalidDataError, av.error.EOFError, ValueError) as exc:
        kind = _looks_like(data)
        if kind:
            raise InvalidRequest(
                f"the uploaded file looks like {kind} but is truncated or corrupt", param="file"
            ) from exc
        raise UnsupportedMedia(
            "the uploaded file is not audio in a format this server reads (WAV, FLAC, MP3, "
            "OGG/Opus, M4A/AAC, WebM)",
            param="file",
        ) from exc
    except av.error.FFmpegError as exc:
        raise InvalidRequest(f"the uploaded file cannot be read: {exc}", param="file") from exc
    with container:
        return _decode_container(container, sample_rate, max_seconds, _wav_seconds(data))


def _decode_container(
    container: Any, sample_rate: int, max_seconds: float, wav_seconds: float | None
) -> Decoded:
    streams = list(container.streams.audio)
    if not streams:
        raise UnsupportedMedia(
            f"the uploaded file is not audio: it has no audio stream (it reads as "
            f"{container.format.name})",
            param="file",
        )
    stream = streams[0]
    declared = wav_seconds if wav_seconds is not None else _declared_seconds(container, stream)
    if declared is not None and declared > max_seconds + 0.5:
        raise PayloadTooLarge(
            f"the audio is {declared:.1f} s long; this server accepts at most {max_seconds:g} s",
            param="file",
        )
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    total = 0
    limit = int((max_seconds + 0.5) * sample_rate)
    try:
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler keep its own timeline
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(
                    f"the audio is longer than this server's limit of {max_seconds:g} s",
                    param="file",
                )
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise InvalidRequest(
            f"the audio stream is corrupt or truncated ({exc.strerror or exc})", param="file"
        ) from exc
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(samples) == 0:
        raise InvalidRequest("the uploaded file contains no audio samples", param="file")
    got = len(samples) / sample_rate
    if declared is not None and declared > 0.5 and got < declared * _TRUNCATED_SHARE:
        raise InvalidRequest(
            f"the audio is truncated: its header declares {declared:.1f} s but only "
            f"{got:.1f} s could be decoded",
            param="file",
        )
    codec = stream.codec_context.name if stream.codec_context else ""
    return Decoded(samples, sample_rate, str(container.format.name), str(codec))


def _declared_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


#: Leading bytes of the audio formats we read (offset, signature, name).
_SIGNATURES = (
    (0, b"RIFF", "WAV"),
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "OGG"),
    (0, b"ID3", "MP3"),
    (0, b"\xff\xfb", "MP3"),
    (0, b"\xff\xf3", "MP3"),
    (0, b"\xff\xf2", "MP3"),
    (0, b"\xff\xf1", "AAC"),
    (0, b"\xff\xf9", "AAC"),
    (4, b"ftyp", "M4A/MP4"),
    (0, b"\x1aE\xdf\xa3", "WebM/Matroska"),
)


def _looks_like(data: bytes) -> str:
    """The audio format ``data`` starts like ("" for none)."""
    for offset, magic, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    return ""


def _wav_seconds(data: bytes) -> float | None:
    """The length a RIFF/WAV header declares (FFmpeg trusts the file size instead, which
    hides truncation); None for other formats and for streamed WAVs of unknown length."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == b"fmt " and pos + 16 <= len(data):
            byte_rate = int.from_bytes(data[pos + 16 : pos + 20], "little")
        if kind == b"data":
            if byte_rate <= 0 or size in (0, 0xFFFFFFFF):
                return None
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return None


class _Sink:
    """A write-only, non-seekable file for FFmpeg's muxers (so they emit streamable output)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class Encoder:
    """Turns 16-bit mono PCM chunks (at ``input_rate``) into one output format's bytes.

    ``feed`` returns the bytes ready so far (possibly none: encoders work in frames) and
    ``finish`` the rest; concatenated, they are one complete file of ``fmt``.
    """

    def __init__(self, fmt: str, input_rate: int) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise InvalidRequest(
                f"unsupported response_format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}",
                param="response_format",
            )
        self.fmt = fmt
        self.input_rate = input_rate
        container_fmt, codec, sample_fmt, _ = OUTPUT_FORMATS[fmt]
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
        self._sink = _Sink()
        self._container: Any = None
        self._stream: Any = None
        self._to_codec: Any = None
        if container_fmt:
            self._container = av.open(self._sink, mode="w", format=container_fmt)
            self._stream = self._container.add_stream(codec, rate=OUTPUT_RATE)
            self._stream.layout = "mono"
            self._to_codec = av.AudioResampler(format=sample_fmt, layout="mono", rate=OUTPUT_RATE)

    @property
    def media_type(self) -> str:
        """The MIME type of the output."""
        return OUTPUT_FORMATS[self.fmt][3]

    def feed(self, pcm: bytes) -> bytes:
        """Encode a chunk of s16le mono PCM at ``input_rate``; the bytes ready so far."""
        if not pcm:
            return b""
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.input_rate
        return self._encode(self._resampler.resample(frame))

    def finish(self) -> bytes:
        """Flush the encoder and close the container; the last bytes."""
        out = self._encode(self._resampler.resample(None))
        if self._container is None:
            return out
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return out + self._sink.take()

    def _encode(self, frames: list[Any]) -> bytes:
        if self._container is None:
            return b"".join(bytes(f.to_ndarray().astype("<i2").tobytes()) for f in frames)
        for frame in frames:
            frame.pts = None
            for converted in self._to_codec.resample(frame):
                converted.pts = None
                for packet in self._stream.encode(converted):
                    self._container.mux(packet)
        return self._sink.take()


def encode_all(pcm: bytes, input_rate: int, fmt: str) -> bytes:
    """One whole file of ``fmt`` from s16le mono PCM (tests, the voice app)."""
    enc = Encoder(fmt, input_rate)
    return enc.feed(pcm) + enc.finish()
