"""Speech: recognition (Whisper through faster-whisper) and synthesis (eSpeak NG), offline.

``protocol`` says what an engine is, ``asr`` and ``tts`` are the bundled engines,
``audio_io`` decodes uploads and encodes output formats, ``service`` holds the served models
by name (OpenAI's names as aliases), and ``captions`` writes transcripts as SRT/VTT. No HTTP here:
the routes are ``server/audio/`` and the voice support desk ``server/voice/``.
"""
