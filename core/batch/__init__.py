"""Batches of videos on Ray (``run.py``): the task graph per video (``jobs.py``), the node-side command runner
(``command.py``) and the offline gallery (``gallery.py``)."""
