"""Training data and trainers for the LLM user simulator: scenes, reason labels, user groups, SFT/DPO/GRPO."""
