"""Synthetic inputs with known ground truth (test clips now; full phone captures later)."""
