"""`studio-avatar render`: a built avatar batch-rendered over lightings x turntable views x expressions.

One small avatar is built from a synthesized capture (as in tests/test_build.py)
and every render runs through the CLI in a fresh process: opening the .blend
replaces a Blender session's data, and EEVEE may abort its process.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli
from test_build import make_capture

from studio_avatar.core.blender.batch_render import (
    CONTACT_SHEET, SHEET_HEADER_HEIGHT_PX, SHEET_LABEL_WIDTH_PX, expression_weights, plan_tasks,
)
from studio_avatar.core.errors import InputError

SIZE_PX = 96
LIGHTINGS, VIEWS, EXPRESSIONS = ("studio", "sunset"), ("+000", "+030"), ("neutral", "jawOpen")
JOB = ("--lightings", ",".join(LIGHTINGS), "--views", "0,30", "--expressions", ",".join(EXPRESSIONS),
       "--resolution", str(SIZE_PX), "--samples", "4")
BACKDROP_TOLERANCE = 12     # 8-bit levels: the studio preset's plain grey world is uniform to about 2


@pytest.fixture(scope="module")
def avatar(tmp_path_factory) -> Path:
    from studio_avatar.core.head.open_head import get_open_head

    root = tmp_path_factory.mktemp("batch")
    capture = make_capture(root / "anna", get_open_head(with_landmarks=False))
    blend = root / "avatar.blend"
    result = run_cli("build", str(capture), "-o", str(blend))
    assert result.returncode == 0, result.stderr
    return blend


def render(blend: Path, out: Path, *args: str, timeout: float = 240) -> dict:
    result = run_cli("--progress", "none", "render", str(blend), "-o", str(out), *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def batch(avatar, tmp_path_factory) -> dict:
    return render(avatar, tmp_path_factory.mktemp("renders"), *JOB)


def test_plan_is_lighting_major_with_one_file_per_task():
    tasks = plan_tasks(["studio", "sunset"], [0, -30.0, 22.5], ["neutral", "smile"])
    assert len(tasks) == 12 and [task.index for task in tasks] == list(range(12))
    assert [task.file_name for task in tasks[:4]] == [
        "studio_yaw+000_neutral.png", "studio_yaw-030_neutral.png", "studio_yaw+022.5_neutral.png",
        "studio_yaw+000_smile.png"]
    assert len({task.file_name for task in tasks}) == 12


def test_unknown_presets_and_expressions_are_clear_input_errors():
    with pytest.raises(InputError, match=r"unknown lighting preset\(s\) moon; choose from studio, sunset"):
        plan_tasks(["studio", "moon"], [0], ["neutral"])
    with pytest.raises(InputError, match="listed twice"):
        plan_tasks(["studio"], [0, 0], ["neutral"])
    with pytest.raises(InputError, match=r"'grin' needs shape key\(s\) grin that the avatar lacks; use neutral, smile"):
        expression_weights("grin", {"jawOpen", "mouthSmileLeft"})
    assert expression_weights("smile+jawOpen", {"jawOpen", "mouthSmileLeft", "mouthSmileRight"}) == {
        "mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "jawOpen": 1.0}


def head_mask(studio_image: np.ndarray) -> np.ndarray:
    """(H, W) True on the head of a studio-lit render: wherever it differs from the grey backdrop at its border."""
    image = studio_image.astype(np.float32)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.abs(image - np.median(border, axis=0)).max(-1) > BACKDROP_TOLERANCE


def abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) largest per-channel difference of two 8-bit images, in levels."""
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).max(-1)


def check_each_axis_of_the_job(images: dict[str, np.ndarray]) -> None:
    """The images of JOB's tasks (file name -> BGR) change where each axis of the job says, on the head itself.

    Lighting: the head's own pixels change, not only the backdrop. Expression: jawOpen changes a mouth's worth of
    pixels, all below the eyes, and leaves the upper head as it was. View: the head's silhouette moves.
    """
    def image(lighting, view, expression):
        return images[f"{lighting}_yaw{view}_{expression}.png"]

    for view in VIEWS:
        for expression in EXPRESSIONS:
            head = head_mask(image("studio", view, expression))
            assert 0.1 < head.mean() < 0.5, (view, expression, head.mean())        # framed: the head, not all of it
            relit = abs_diff(image("studio", view, expression), image("sunset", view, expression))[head].mean()
            assert relit > 8, (view, expression, relit)                            # about 15 levels when it works
    for lighting in LIGHTINGS:
        for view in VIEWS:
            head = head_mask(image("studio", view, "neutral"))
            rows = np.flatnonzero(head.any(axis=1))
            below_eyes = rows[0] + 0.45 * (rows[-1] - rows[0])
            changed = abs_diff(image(lighting, view, "neutral"), image(lighting, view, "jawOpen")) > 30
            assert changed[head].mean() > 0.02, (lighting, view, changed[head].mean())   # 4-6 % when it works
            assert np.flatnonzero(changed.any(axis=1))[0] > below_eyes, (lighting, view)
            upper_head = head & (np.arange(head.shape[0]) < below_eyes)[:, None]
            assert not changed[upper_head].any(), (lighting, view)
    for expression in EXPRESSIONS:
        front, turned = (head_mask(image("studio", view, expression)) for view in VIEWS)
        assert (front & turned).sum() / (front | turned).sum() < 0.95, expression      # 0.85 when it works
        for lighting in LIGHTINGS:
            turning = abs_diff(image(lighting, VIEWS[0], expression), image(lighting, VIEWS[1], expression))
            assert turning[front | turned].mean() > 10, (lighting, expression)        # 19-24 levels when it works


def test_batch_writes_every_image_and_a_contact_sheet(batch):
    images = {Path(path).name: cv2.imread(path) for path in batch["images"]}
    assert len(images) == 8 and batch["rendered"] == 8 and batch["engine"] == "CYCLES"
    assert all(image is not None and image.shape == (SIZE_PX, SIZE_PX, 3) for image in images.values())
    check_each_axis_of_the_job(images)
    sheet = cv2.imread(batch["contact_sheet"])
    assert Path(batch["contact_sheet"]).name == CONTACT_SHEET
    rows, columns = 2 * 2, 2                       # lighting x expression, views
    assert sheet.shape == (SHEET_HEADER_HEIGHT_PX + rows * SIZE_PX, SHEET_LABEL_WIDTH_PX + columns * SIZE_PX, 3)
    # row 1 (studio, jawOpen), column 1 (yaw 30) holds task 3's image
    cell = sheet[SHEET_HEADER_HEIGHT_PX + SIZE_PX:SHEET_HEADER_HEIGHT_PX + 2 * SIZE_PX, SHEET_LABEL_WIDTH_PX + SIZE_PX:]
    assert np.array_equal(cell, images["studio_yaw+030_jawOpen.png"])


def test_farm_mode_lists_the_tasks_and_renders_one(avatar, tmp_path):
    listed = render(avatar, tmp_path, *JOB, "--list-tasks")
    assert listed["count"] == 8 and [task["index"] for task in listed["tasks"]] == list(range(8))
    assert listed["tasks"][3] == {"index": 3, "lighting": "studio", "yaw_deg": 30.0, "expression": "jawOpen",
                                  "file": "studio_yaw+030_jawOpen.png"}
    assert not any(tmp_path.iterdir())

    one = render(avatar, tmp_path, *JOB, "--task", "3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["studio_yaw+030_jawOpen.png"]
    assert one["rendered"] == 1 and one["contact_sheet"] is None
    again = render(avatar, tmp_path, *JOB, "--task", "3")
    assert again["rendered"] == 0 and again["skipped"] == 1       # a farm retry keeps finished work

    sheet = render(avatar, tmp_path, *JOB, "--contact-sheet-only")
    assert cv2.imread(sheet["contact_sheet"]).shape[:2] == (SHEET_HEADER_HEIGHT_PX + 4 * SIZE_PX,
                                                            SHEET_LABEL_WIDTH_PX + 2 * SIZE_PX)


def test_cli_names_a_bad_expression_task_or_avatar(avatar, tmp_path):
    cases = [
        ((str(avatar), "--expressions", "neutral,grin"), "expression 'grin' needs shape key(s) grin that the avatar lacks"),
        ((str(avatar), "--task", "8", *JOB[:6]), "--task 8 is out of range: the job has tasks 0 to 7"),
        ((str(avatar), "--views", "front"), "--views takes yaw angles in degrees"),
        ((str(tmp_path / "none.blend"),), "does not exist; build the avatar first"),
    ]
    for args, message in cases:
        result = run_cli("render", *args, "-o", str(tmp_path / "out"))
        assert result.returncode == 2 and message in result.stderr, result.stderr[-1000:]
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_eevee_renders_in_a_child_process_or_says_why_not(avatar, tmp_path):
    result = run_cli("--progress", "none", "render", str(avatar), "-o", str(tmp_path), "--engine", "EEVEE",
                     "--resolution", "32", "--samples", "1", timeout=300)
    if result.returncode != 0:
        assert "EEVEE could not start" in result.stderr and "use --engine CYCLES" in result.stderr, result.stderr[-2000:]
        pytest.skip(f"EEVEE is unavailable on this machine: {result.stderr.strip().splitlines()[-1]}")
    image = cv2.imread(json.loads(result.stdout)["images"][0])
    assert image.shape == (32, 32, 3) and image.std() > 5          # the head on the studio world, not a blank frame
