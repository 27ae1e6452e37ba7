"""All user-facing text of the Blender UI in one place (labels, tooltips, messages)."""

ADDON_NAME = "Studio Avatar"

# Capture panel
CAPTURE_PANEL = "Capture"
VIDEO_PATH = "Video"
VIDEO_PATH_TIP = "Phone video of the head to reconstruct (mp4, mov, avi, mkv, webm)"
SELECT_VIDEO = "Choose Video"
SELECT_VIDEO_TIP = "Pick a capture video from disk and read its facts"
PROBE_VIDEO = "Probe Video"
PROBE_VIDEO_TIP = "Read the video's facts (frames, frame rate, size, rotation, codec) in a background worker"
PROBE_WAIT_TIP = "Block until the worker finishes (for scripts and background mode)"
CANCEL_JOB = "Cancel"
CANCEL_JOB_TIP = "Stop the running background job; completed stages are kept"
NO_VIDEO = "Choose a phone video of a head to begin"
PROBING = "Reading video…"
NOT_PROBED = "Not probed yet"

# Facts
FACT_RESOLUTION = "Resolution"
FACT_FRAMES = "Frames"
FACT_DURATION = "Duration"
FACT_CODEC = "Codec"
FACT_SIZE = "File size"

# Preferences
PREF_CACHE_DIR = "Cache Folder"
PREF_CACHE_DIR_TIP = "Where built head models and other derived data are cached (empty: the add-on's user folder)"
PREF_DEVICE = "Device"
PREF_DEVICE_TIP = "Where the learned stages run"
PREF_DEVICE_ITEMS = (
    ("AUTO", "Auto", "Use a CUDA GPU when the worker's torch sees one, else the CPU"),
    ("CPU", "CPU", "Always run on the CPU"),
    ("CUDA", "CUDA", "Run on an NVIDIA GPU; fails clearly if none is available"),
)
PREF_PYTHON = "Worker Python"
PREF_PYTHON_TIP = (
    "Python interpreter that runs the pipeline worker (empty: Blender's own Python). "
    "Point it at a virtual environment that has the dependencies installed"
)
PREF_EFFECTIVE_CACHE = "Cache in use"
PREF_DEPS_FOLDER = "Dependencies folder"
PREF_WORKER = "Worker"

# Messages
ERR_NO_VIDEO = "Choose a video file first"
ERR_JOB_RUNNING = "A Studio Avatar job is already running; wait for it or cancel it"
ERR_WORKER_DIED = "The worker stopped without a result (exit code {code}): {detail}"
MSG_CANCELLED = "Cancelled"
