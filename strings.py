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

# Reconstruct panel and operators
RECONSTRUCT_PANEL = "Reconstruct"
RECONSTRUCT = "Reconstruct"
RECONSTRUCT_TIP = (
    "Run the reconstruction stages on the video in a background worker (frames, tracking, fit, texture, delight); "
    "stages already up to date are skipped, so a cancelled or failed run resumes where it stopped"
)
RECONSTRUCTING = "Reconstructing"
RECONSTRUCT_VIDEO_TIP = "Phone video of the head to reconstruct (empty: the scene's chosen video)"
RECONSTRUCT_CAPTURE_TIP = (
    "Capture folder to write (empty: the scene's capture folder, else a folder named after the video beside it)"
)
CAPTURE_DIR_TIP = "Capture folder of this scene's reconstruction (capture.json, frames, fit, textures)"
PRESET = "Quality"
PRESET_TIP = "How many frames are used and how large the textures are"
PRESET_ITEMS = (
    ("DRAFT", "Draft", "40 frames, 1024 texels: a quick look"),
    ("STANDARD", "Standard", "80 frames, 2048 texels"),
    ("HIGH", "High", "120 frames, 4096 texels: slowest, most detail"),
)
TEXTURE_SIZE = "Texture Size"
TEXTURE_SIZE_TIP = "Texels across the UV textures (0: from the quality preset)"
TEXTURE_METHOD = "Texture Method"
TEXTURE_METHOD_TIP = "How the phone texture's lighting is removed and its unseen parts are filled"
TEXTURE_METHOD_ITEMS = (
    ("AUTO", "Auto", "GMug when its weights are installed, else Classic"),
    ("GMUG", "GMug", "Learned delighting, exposure and white-balance recovery and completion (a StyleGAN2 prior in UV "
                     "space); falls back to Classic with a warning when its weights are missing or damaged"),
    ("CLASSIC", "Classic", "Spherical-harmonics delighting and symmetric inpainting (no learned weights)"),
)
GMUG_WEIGHTS_MISSING = "GMug weights not found in the weights folder: Classic will be used"
RECON_DEVICE = "Device"
RECON_DEVICE_TIP = "Where the worker runs its learned stages"
STAGE_STATUS = "Stages"
RERUN_STAGE = "Run Again"
RERUN_STAGE_TIP = "Run this stage again (and the later stages that depend on it) with the scene's reconstruct settings"
STAGE_NAME_TIP = "Name of the pipeline stage"
REFRESH_STATUS = "Refresh"
REFRESH_STATUS_TIP = "Read the capture folder's stage records again (done, stale, failed, pending)"
NO_CAPTURE_YET = "No capture yet: choose a video and press Reconstruct"
RECON_FAILED = "Reconstruction failed"
MSG_RECONSTRUCTED = "Reconstructed {capture}: {done} of {total} stages done"
ERR_NO_CAPTURE_DIR = "This scene has no capture folder yet; reconstruct first"
STAGE_STATUS_ITEMS = (
    ("pending", "Pending", "Not run yet"),
    ("running", "Running", "Being worked on"),
    ("done", "Done", "Finished and up to date"),
    ("stale", "Stale", "Its inputs or outputs changed since it finished (new video, an earlier stage rerun): run it again"),
    ("failed", "Failed", "The last run failed"),
    ("cancelled", "Cancelled", "The last run was cancelled"),
    ("interrupted", "Interrupted", "The run stopped without finishing (crash or killed)"),
)

# Render & Export panel and operators
RENDER_EXPORT_PANEL = "Render & Export"
BATCH_RENDER = "Batch Render"
BATCH_RENDER_TIP = (
    "Render the scene's avatar under each lighting, from each view, with each expression (one PNG each plus a "
    "contact sheet) in a background worker; the open file is never changed"
)
RENDERING = "Rendering"
RENDER_DIR = "Output Folder"
RENDER_DIR_TIP = "Folder for the images (empty or relative in an unsaved file: renders/ in the cache folder)"
RENDER_LIGHTINGS = "Lightings"
RENDER_LIGHTINGS_TIP = "Lighting presets to render under"
RENDER_LIGHTINGS_TEXT_TIP = "Lighting presets, comma-separated (empty: the scene's choice): studio, sunset, forest, city"
RENDER_VIEWS = "Views"
RENDER_VIEWS_TIP = "Camera yaws in degrees around the head, comma-separated; + turns towards the avatar's left"
RENDER_EXPRESSIONS = "Expressions"
RENDER_EXPRESSIONS_TIP = (
    "Expressions, comma-separated: neutral, smile, jawOpen, blink, surprise, any shape key name, or keys joined by +"
)
RENDER_ENGINE = "Engine"
RENDER_ENGINE_TIP = "Render engine"
RENDER_ENGINE_ITEMS = (
    ("CYCLES", "Cycles", "Cycles on the CPU (works everywhere)"),
    ("EEVEE", "EEVEE", "EEVEE (needs a GPU or EGL; each image renders in a child process)"),
)
RENDER_RESOLUTION = "Resolution"
RENDER_RESOLUTION_TIP = "Side of the square images in pixels"
RENDER_SAMPLES = "Samples"
RENDER_SAMPLES_TIP = "Samples per pixel (Cycles: denoised)"
LAST_RENDER_TIP = "Contact sheet of the last batch render"
MSG_RENDERED = "Rendered {count} images into {folder}"
EXPORT_AVATAR = "Export Avatar"
EXPORT_AVATAR_TIP = (
    "Write the scene's avatar as glTF binary or FBX (skin, shape keys) or its fitted FLAME parameters (.npz), "
    "in a background worker; the open file is never changed"
)
EXPORTING = "Exporting"
EXPORT_PATH_TIP = "File to write; the format's extension is added when missing"
EXPORT_FORMAT = "Format"
EXPORT_FORMAT_TIP = "File format to write"
EXPORT_FORMAT_ITEMS = (
    ("GLB", "glTF Binary (.glb)", "Armature, head and eyes with skin weights, shape keys as morph targets, materials"),
    ("FBX", "FBX (.fbx)", "The same for Unreal, Unity and Live Link Face pipelines (ARKit-named shape keys)"),
    ("NPZ", "FLAME Parameters (.npz)", "The fit's identity shape and per-frame expression, pose and camera"),
)
EXPORT_OVERWRITE = "Overwrite"
EXPORT_OVERWRITE_TIP = "Replace the file if it exists"
MSG_EXPORTED = "Exported {path}"
ERR_NO_EXPORT_PATH = "Choose a file to export to"
RENDER_HEADER = "Batch Render"
EXPORT_HEADER = "Export"
BATCH_HEADER = "Batch of Videos"
BATCH_VIDEOS = "Batch Videos"
BATCH_VIDEOS_TIP = (
    "Reconstruct, build, render (the Batch Render settings above) and export every video of a folder, scheduled "
    "by Ray on this machine's cores or a cluster, in a background worker; running it again resumes"
)
BATCHING = "Batch"
BATCH_VIDEOS_DIR = "Videos Folder"
BATCH_VIDEOS_DIR_TIP = "Folder whose videos (.mp4, .mov, .m4v, .avi, .mkv, .webm) are batched"
BATCH_OUTPUT_DIR = "Batch Output"
BATCH_OUTPUT_DIR_TIP = "Folder for one subfolder per video, summary.json and index.html (a gallery)"
BATCH_EXPORTS = "Export Formats"
BATCH_EXPORTS_TIP = "Comma-separated export formats per avatar: glb, fbx, npz (empty: none)"
BATCH_RAY_ADDRESS = "Ray Cluster"
BATCH_RAY_ADDRESS_TIP = "Address of a Ray cluster to join (empty: start Ray on this machine); paths must be shared"
OPEN_BATCH_GALLERY = "Open Gallery"
LAST_BATCH_TIP = "The gallery (index.html) of the last batch of videos"
LAST_BATCH_RESULT_TIP = "How the last batch of videos ended"
MSG_BATCH_RESULT = "{done} of {total} videos done, {failed} failed"
MSG_BATCHED = "Batch done: {done} of {total} videos, {failed} failed; see {index}"
ERR_NO_VIDEOS = "No videos (.mp4, .mov, .m4v, .avi, .mkv, .webm) in {folder}"
ERR_NO_BATCH_PATHS = "Choose a videos folder and a batch output folder"
OPEN_RENDER_FOLDER = "Open Folder"
CHOSEN_FRAMES = "Chosen frames"

# Avatar panel
AVATAR_PANEL = "Avatar"
NO_AVATAR = "No avatar in the scene: build one from a capture or add a head"
AVATAR_TEXTURES = "Texture Maps"
AVATAR_NO_TEXTURES = "The skin material has no image textures"
AVATAR_EXPRESSIONS = "Expressions"
AVATAR_NO_EXPRESSIONS = "The head has no expression shape keys"
AVATAR_POSE = "Pose"
POSE_BONE_LABELS = {"jaw": "Jaw", "eye_L": "Left Eye", "eye_R": "Right Eye", "neck": "Neck"}
EXPRESSION_GROUPS = (    # (group id of core/blender/rig.py, label, tooltip of its open/closed toggle)
    ("brows", "Brows", "Show the brow expression sliders"),
    ("eyes", "Eyes", "Show the eye and eyelid expression sliders"),
    ("cheeks", "Cheeks", "Show the cheek expression sliders"),
    ("nose", "Nose", "Show the nose expression sliders"),
    ("mouth", "Mouth", "Show the mouth and lip expression sliders"),
    ("jaw", "Jaw", "Show the jaw expression sliders"),
    ("tongue", "Tongue", "Show the tongue expression sliders"),
    ("other", "Expressions", "Show the sliders of the other expression shape keys (FLAME's components)"),
)
RESET_POSE = "Reset Pose"
RESET_POSE_TIP = "Neutral expression (every shape key at 0) and the jaw, eyes and neck back at rest, on the avatar shown"
ERR_NO_AVATAR = "No avatar in the scene: select an avatar's rig or head, or build one first"
MSG_POSE_RESET = "Reset the pose of {name}"

# Lighting panel
LIGHTING_PANEL = "Lighting"
LIGHTING_PRESET = "Preset"
LIGHTING_PRESET_TIP = "Lighting to show the avatar under; None / Original gives the scene back its own world"
LIGHTING_PRESET_ITEMS = (    # identifiers are core/blender/lighting.py PRESETS names, plus ORIGINAL
    ("ORIGINAL", "None / Original", "Remove the add-on's lighting and give the scene back the world it had before"),
    ("studio", "Studio 3-Point", "Three softbox area lamps (key, fill, rim) in a dim neutral world"),
    ("studio_hdri", "Studio HDRI", "Blender's bundled studio world HDRI"),
    ("city", "City", "Blender's bundled city world HDRI"),
    ("courtyard", "Courtyard", "Blender's bundled courtyard world HDRI"),
    ("forest", "Forest", "Blender's bundled forest world HDRI"),
    ("interior", "Interior", "Blender's bundled interior world HDRI"),
    ("night", "Night", "Blender's bundled night world HDRI"),
    ("sunrise", "Sunrise", "Blender's bundled sunrise world HDRI"),
    ("sunset", "Sunset", "Blender's bundled sunset world HDRI"),
)
LIGHTING_ROTATION = "Rotation"
LIGHTING_ROTATION_TIP = "Turn the lighting about the vertical axis, in degrees (the HDRI and the studio lamps alike)"
LIGHTING_STRENGTH = "Strength"
LIGHTING_STRENGTH_TIP = "Brightness factor of the preset: scales the HDRI strength and the lamp power"
APPLY_LIGHTING = "Apply Lighting"
APPLY_LIGHTING_TIP = (
    "Light the scene with a preset at once (no rendering): replaces only the add-on's own world and lamps, "
    "which live in the \"Studio Avatar Lighting\" collection; your objects and world are kept"
)
LIGHTING_ACTIVE = "Active: {preset}"
LIGHTING_ORIGINAL = "The scene shows its own world"
LIGHTING_USER_LAMPS = "{count} lamp(s) of your own also light the scene"
MSG_LIGHTING_APPLIED = "Lighting: {preset}"
MSG_LIGHTING_RESTORED = "Lighting: the scene's own world"

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
PREF_WEIGHTS_DIR = "Weights Folder"
PREF_WEIGHTS_DIR_TIP = (
    "Folder with the learned stages' weights (GMug, detail diffusion) to use instead of the weights shipped "
    "with the add-on (empty: the shipped ones)"
)
PREF_WEIGHTS_IN_USE = "Weights in use"

# Preferences > Dependencies
DEPS_BOX = "Python Dependencies"
DEPS_TORCH_VARIANT = "Torch Build"
DEPS_TORCH_VARIANT_TIP = "Which build of torch Install downloads"
DEPS_TORCH_VARIANT_ITEMS = (
    ("cpu", "CPU", "The CPU-only torch from PyTorch's CPU index (smaller download; works everywhere)"),
    ("cuda", "CUDA", "The default torch from PyPI (CUDA on Linux and Windows; needs an NVIDIA GPU and driver)"),
)
INSTALL_DEPENDENCIES = "Install Missing"
INSTALL_DEPENDENCIES_TIP = (
    "Download the missing Python packages with pip into this add-on's own site-packages folder "
    "(uses the network; Esc or Cancel stops it)"
)
CHECK_DEPENDENCIES = "Check Again"
CHECK_DEPENDENCIES_TIP = "Look again which of the worker's Python packages are installed (reads package metadata only)"
DEPS_ALL_OK = "All dependencies are installed"
DEPS_STATE = {"OK": "installed", "MISSING": "missing", "WRONG_VERSION": "wrong version"}
DEPS_WORKER_PYTHON_SET = "Worker Python is set: the worker uses that interpreter's own packages"
DEPS_LAST_ERROR = "Last install failed"
MSG_DEPS_INSTALLED = "Dependencies installed into {folder}"

# Messages
ERR_NO_VIDEO = "Choose a video file first"
ERR_JOB_RUNNING = "A Studio Avatar job is already running; wait for it or cancel it"
ERR_WORKER_DIED = "The worker stopped without a result (exit code {code}): {detail}"
MSG_CANCELLED = "Cancelled"
ERR_NO_FLAME = "Set the FLAME model file in the Studio Avatar preferences first (Edit > Preferences > Add-ons)"
ERR_FLAME_MISSING = "FLAME model file not found: {path}; fix the path in the Studio Avatar preferences"
ERR_MISSING_PACKAGE = (
    "Building the head needs the Python package '{name}' in Blender's Python; "
    "install it with Install Missing under Python Dependencies in the Studio Avatar preferences "
    "(Edit > Preferences > Add-ons)"
)
MSG_HEAD_ADDED = "Added {name}: {vertices} vertices, {expressions} expression shape keys"
