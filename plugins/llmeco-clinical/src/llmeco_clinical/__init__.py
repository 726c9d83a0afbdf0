"""Clinical-note analysis for llmeco: de-identification, extraction, interaction flags."""
