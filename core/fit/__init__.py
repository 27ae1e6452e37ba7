"""Stage ``fit``: one identity shape and per-frame pose, expression and camera from the tracked landmarks."""

from .stage import FIT_NPZ, FIT_STAGE, FitParams, check_fitted_model, fit_model_files, load_fit, load_fitted_model

__all__ = ["FIT_NPZ", "FIT_STAGE", "FitParams", "check_fitted_model", "fit_model_files", "load_fit", "load_fitted_model"]
