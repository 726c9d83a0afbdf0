"""Data preparation: read raw files, clean, dedupe, redact, split, and train tokenizers."""
