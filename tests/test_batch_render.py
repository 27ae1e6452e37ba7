"""`studio-avatar render`: a built avatar batch-rendered over lightings x turntable views x expressions.

One small avatar is built from a synthesized capture (as in tests/test_build.py)
and every render runs through the CLI in a fresh process: opening the .blend
replaces a Blender session's data, and EEVEE may abort its process.
"""

import itertools
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
JOB = ("--lightings", "studio,sunset", "--views", "0,30", "--expressions", "neutral,jawOpen",
       "--resolution", str(SIZE_PX), "--samples", "4")


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


def test_batch_writes_every_image_all_different_and_a_contact_sheet(batch):
    images = {Path(path).name: cv2.imread(path) for path in batch["images"]}
    assert len(images) == 8 and batch["rendered"] == 8 and batch["engine"] == "CYCLES"
    assert all(image is not None and image.shape == (SIZE_PX, SIZE_PX, 3) for image in images.values())
    for (name_a, a), (name_b, b) in itertools.combinations(images.items(), 2):
        assert np.abs(a.astype(np.float32) - b).mean() > 0.25, (name_a, name_b)
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
