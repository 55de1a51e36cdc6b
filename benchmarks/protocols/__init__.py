"""Evaluation protocols rebuilt as the papers define them, each in its own labelled module: ``usermirrorer``
(5-option choice on scenes built as their released sampler builds them), ``agent4rec`` (like / dislike at 1:1 to 1:9,
rating error), ``policy_ranking`` (does a simulator rank policies as real logs do?)."""
