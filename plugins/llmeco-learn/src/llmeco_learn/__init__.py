"""Learning recommendations for llmeco: learner profiles, a content library, next items."""
