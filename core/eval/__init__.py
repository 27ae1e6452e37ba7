"""Evaluation of a reconstruction against synthetic ground truth (``studio-avatar eval``)."""
