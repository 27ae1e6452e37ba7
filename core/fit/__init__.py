"""Stage ``fit``: one identity shape and per-frame pose, expression and camera from the tracked landmarks."""
