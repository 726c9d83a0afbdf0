"""Training: one loop for pretraining and supervised fine-tuning, with exact resume."""
