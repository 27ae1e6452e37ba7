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

# Add > Mesh > Studio Avatar Head
ADD_HEAD = "Add Studio Avatar Head"
ADD_HEAD_MENU = "Studio Avatar Head"
PREPARING_HEAD = "Preparing the head model"
ADD_HEAD_TIP = "Add a rigged head (armature, expression shape keys, separate eyes) in a new collection"
HEAD_SOURCE = "Head Model"
HEAD_SOURCE_TIP = "Which head model to build"
HEAD_SOURCE_ITEMS = (
    ("OPEN", "Open Head", "The open head built from CC0 MakeHuman assets (no download; built once and cached)"),
    ("FLAME", "FLAME", "The FLAME model file set in the add-on preferences (licensed separately)"),
)
NUM_EXPRESSIONS = "Expressions"
NUM_EXPRESSIONS_TIP = "How many expressions become shape keys (FLAME: the first N components); 0: all"

# Build Avatar from Capture
BUILD_AVATAR = "Build Avatar from Capture"
BUILD_AVATAR_TIP = (
    "Add the avatar of a reconstructed capture folder: the rigged head with the fitted identity, a skin material "
    "from the best albedo, eye and mouth materials, in a new collection at the 3D cursor"
)
CAPTURE_FOLDER = "Capture Folder"
CAPTURE_FOLDER_TIP = "A capture folder made by reconstruct (with capture.json, fit.npz and textures/)"
PACK_IMAGES = "Pack Images"
PACK_IMAGES_TIP = "Pack the avatar's images into the .blend instead of referencing the files in the capture folder"
ERR_NO_CAPTURE = "Choose a capture folder first"
MSG_AVATAR_BUILT = "Built {name} from capture {capture} ({albedo} albedo)"

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
PREF_FLAME_MODEL = "FLAME Model"
PREF_FLAME_MODEL_TIP = (
    "The official FLAME 2020 or 2023 model file (e.g. generic_model.pkl or flame2023.pkl), "
    "downloaded from flame.is.tue.mpg.de after accepting its license"
)
PREF_FLAME_UV = "FLAME UV Template"
PREF_FLAME_UV_TIP = "FLAME's UV template (head_template.obj, or an .npz with vt and ft); empty: placeholder UVs"
PREF_EFFECTIVE_CACHE = "Cache in use"
PREF_DEPS_FOLDER = "Dependencies folder"
PREF_WORKER = "Worker"

# Messages
ERR_NO_VIDEO = "Choose a video file first"
ERR_JOB_RUNNING = "A Studio Avatar job is already running; wait for it or cancel it"
ERR_WORKER_DIED = "The worker stopped without a result (exit code {code}): {detail}"
MSG_CANCELLED = "Cancelled"
ERR_NO_FLAME = "Set the FLAME model file in the Studio Avatar preferences first (Edit > Preferences > Add-ons)"
ERR_FLAME_MISSING = "FLAME model file not found: {path}; fix the path in the Studio Avatar preferences"
ERR_MISSING_PACKAGE = (
    "Building the head needs the Python package '{name}' in Blender's Python; "
    "install the dependencies as the README says (they go into the add-on's site-packages folder)"
)
MSG_HEAD_ADDED = "Added {name}: {vertices} vertices, {expressions} expression shape keys"
