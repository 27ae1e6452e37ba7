"""A stand-in extension whose worker only emits progress forever (tests the worker client's cancel/kill)."""
