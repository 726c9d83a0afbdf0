"""A separate program that speaks text with eSpeak NG (``python espeak_worker.py VOICE RATE``).

SPDX-License-Identifier: GPL-3.0-or-later (this file only; see below).

eSpeak NG (``libespeak-ng``, shipped with its data in the ``espeakng-loader`` wheel) is
GPL-3.0. llmeco is Apache-2.0 and never loads the library into its own process: the server
starts this worker as a child process and talks to it only through pipes — UTF-8 text on
stdin, a 4-byte little-endian sample rate and then raw 16-bit mono PCM on stdout — the
arm's-length communication between separate programs that the GPL FAQ describes. This file is
the only code that links the library, and it is offered under the library's own licence.
The separation also isolates the C library's global state (it is not thread-safe) and any
crash from the server, and lets each request's synthesis be stopped by ending its process.

Usage: ``espeak_worker VOICE RATE`` (voice as ``en-us`` or ``en-us+f3``, rate in words per
minute, 80–450). Exit status 2: bad arguments; 3: unknown voice; 4: the library failed.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from pathlib import Path

_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_RATE = 1  # espeak_PARAMETER: espeakRATE
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_BUFFER_MS = 100

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _library() -> tuple[ctypes.CDLL, Path]:
    import espeakng_loader

    return ctypes.CDLL(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())


def main(argv: list[str]) -> int:
    """Speak stdin with ``argv = [voice, rate]``; PCM to stdout."""
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: espeak_worker VOICE RATE", file=sys.stderr)
        return 2
    voice, rate = argv[0], int(argv[1])
    text = sys.stdin.buffer.read()
    lib, data = _library()
    sample_rate = lib.espeak_Initialize(_SYNCHRONOUS, _BUFFER_MS, str(data.parent).encode(), 0)
    if sample_rate <= 0:
        print("eSpeak NG failed to initialise", file=sys.stderr)
        return 4
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        print(f"unknown voice {voice!r}", file=sys.stderr)
        return 3
    lib.espeak_SetParameter(_RATE, max(80, min(450, rate)), 0)
    out = sys.stdout.buffer
    out.write(struct.pack("<I", sample_rate))
    out.flush()

    def on_audio(wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if count > 0 and wav:
            out.write(ctypes.string_at(wav, count * 2))
            out.flush()
        return 0

    callback = _Callback(on_audio)
    lib.espeak_SetSynthCallback(callback)
    buf = ctypes.create_string_buffer(text)
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    status = lib.espeak_Synth(buf, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if status != 0:
        print(f"eSpeak NG could not synthesise (status {status})", file=sys.stderr)
        return 4
    lib.espeak_Synchronize()
    lib.espeak_Terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
