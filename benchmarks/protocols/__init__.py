"""Evaluation protocols rebuilt as the papers define them, each in its own labelled module (``agent4rec``)."""
