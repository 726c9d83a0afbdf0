"""``/v1/audio/*``: OpenAI-compatible transcription, translation and speech."""
