"""The Flamenco job type (tools/flamenco/studio_avatar_render.js), compiled by Node against a stand-in of Flamenco's
``author`` API: one task per image of ``render --list-tasks``, then the contact sheet after all of them."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from studio_avatar.core.blender.batch_render import plan_tasks

NODE = shutil.which("node")
COMPILE = """
const tasks = [];
globalThis.author = {
  Task: (name, type) => { const t = {name, type, commands: [], depends: []};
    t.addCommand = (c) => t.commands.push(c); t.addDependency = (d) => t.depends.push(d.name); return t; },
  Command: (kind, params) => ({kind, ...params}),
};
const {JOB_TYPE, compileJob} = require(process.argv[1]);
const job = {settings: JSON.parse(process.argv[2]), addTask: (t) => tasks.push(t)};
try { compileJob(job); console.log(JSON.stringify({label: JOB_TYPE.label, tasks})); }
catch (error) { console.log(JSON.stringify({error: String(error)})); }
"""


def compile_job(repo_root, settings: dict) -> dict:
    script = str(repo_root / "tools" / "flamenco" / "studio_avatar_render.js")
    done = subprocess.run([NODE, "-e", COMPILE, script, json.dumps(settings)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the job type is JavaScript)")
def test_one_flamenco_task_per_image_then_the_contact_sheet(repo_root):
    listed = {"count": 8, "tasks": [task.to_dict() for task in plan_tasks(["studio", "sunset"], [-30.0, 0.0], ["neutral", "smile"])]}
    settings = {"studio_avatar": "/farm/bin/studio-avatar", "avatar": "/shared/anna.blend", "output": "/shared/renders",
                "lightings": "studio,sunset", "views": "-30,0", "expressions": "neutral,smile", "engine": "CYCLES",
                "resolution": 256, "samples": 8, "tasks_json": json.dumps(listed)}
    compiled = compile_job(repo_root, settings)
    renders, sheet = compiled["tasks"][:-1], compiled["tasks"][-1]
    assert len(renders) == 8 and sheet["name"] == "contact-sheet"                     # a 2 x 2 x 2 matrix
    assert sheet["depends"] == [task["name"] for task in renders]
    for task, planned in zip(renders, listed["tasks"]):
        (command,) = task["commands"]
        assert command["kind"] == "exec" and command["exe"] == "/farm/bin/studio-avatar"
        assert command["args"][:4] == ["render", "/shared/anna.blend", "-o", "/shared/renders"]
        assert command["args"][-2:] == ["--task", str(planned["index"])] and "--views=-30,0" in command["args"]
    assert sheet["commands"][0]["args"][-1] == "--contact-sheet-only"


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the job type is JavaScript)")
def test_a_task_list_of_another_matrix_is_refused(repo_root):
    listed = {"count": 1, "tasks": [task.to_dict() for task in plan_tasks(["studio"], [0.0], ["neutral"])]}
    settings = {"studio_avatar": "studio-avatar", "avatar": "a.blend", "output": "out", "lightings": "studio,sunset",
                "views": "0", "expressions": "neutral", "engine": "CYCLES", "resolution": 64, "samples": 1,
                "tasks_json": json.dumps(listed)}
    assert "make 2" in compile_job(repo_root, settings)["error"]
    assert "not JSON" in compile_job(repo_root, {**settings, "tasks_json": "oops"})["error"]
