"""Stage ``fit``: one identity shape and per-frame pose, expression and camera from the tracked landmarks."""

from .stage import FIT_NPZ, FIT_STAGE, FitParams, load_fit

__all__ = ["FIT_NPZ", "FIT_STAGE", "FitParams", "load_fit"]
