"""Errors a user can meet. Each message says what went wrong and what to do.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``;
the Blender add-on shows the same line in its panel and the Info log.
"""


class StudioAvatarError(Exception):
    """Base class of all expected, user-facing failures."""

    exit_code = 2


class InputError(StudioAvatarError):
    """A file or argument given by the user cannot be used."""


class VideoError(InputError):
    """A video cannot be opened, decoded or is unsuitable."""


class CaptureError(StudioAvatarError):
    """A capture folder is missing, damaged or of another format."""


class CaptureBusyError(CaptureError):
    """Another process is working on the same capture folder."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class StageError(StudioAvatarError):
    """A pipeline stage failed or broke its contract."""


class WorkerError(StudioAvatarError):
    """The background worker process failed to start or died."""


class Cancelled(StudioAvatarError):
    """The user cancelled a run. Completed stages are kept; rerun to resume."""

    exit_code = 130
