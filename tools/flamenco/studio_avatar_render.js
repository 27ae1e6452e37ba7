// SPDX-License-Identifier: GPL-3.0-or-later
//
// Flamenco 3 job type: render a built Studio Avatar's lighting x view x expression matrix on a render farm,
// one Flamenco task per image, then a last task that assembles the contact sheet.
//
// Install: copy this file into the Manager's `scripts/` folder (next to flamenco-manager) and restart the
// Manager. Workers need the `studio-avatar` command (README: "Render farms") and a path to the avatar and the
// output folder that every Worker sees. The task list comes from the avatar itself, so the farm never gets a task
// that must fail:
//
//   studio-avatar render AVATAR.blend -o OUT --lightings studio,sunset --views=-30,0,30 --list-tasks > tasks.json
//
// and the job's "Tasks JSON" setting is that file's content (the submit form's field, or the `tasks_json`
// setting of a job submitted through Flamenco's API).

const JOB_TYPE = {
    label: "Studio Avatar Render",
    description: "Render a Studio Avatar .blend under several lightings, views and expressions; one task per image.",
    settings: [
        { key: "studio_avatar", type: "string", default: "studio-avatar", required: true,
          description: "The studio-avatar command on the Workers (a full path if it is not on their PATH)" },
        { key: "avatar", type: "string", subtype: "file_path", required: true,
          description: "The avatar .blend written by `studio-avatar build` (on shared storage)" },
        { key: "output", type: "string", subtype: "dir_path", required: true,
          description: "Folder for the images and contact_sheet.png (on shared storage)" },
        { key: "lightings", type: "string", default: "studio", required: true,
          description: "Lighting presets, comma-separated (studio, sunset, forest, city)" },
        { key: "views", type: "string", default: "0", required: true,
          description: "Camera yaws in degrees around the head, comma-separated" },
        { key: "expressions", type: "string", default: "neutral", required: true,
          description: "Expressions, comma-separated (neutral, smile, jawOpen, blink, surprise, shape keys)" },
        { key: "engine", type: "string", choices: ["CYCLES", "EEVEE"], default: "CYCLES", required: true },
        { key: "resolution", type: "int32", default: 512, required: true, description: "Side of the square images" },
        { key: "samples", type: "int32", default: 16, required: true, description: "Samples per pixel" },
        { key: "tasks_json", type: "string", required: true,
          description: "The output of `studio-avatar render ... --list-tasks` for these settings" },
    ],
};

function matrixArgs(settings) {
    return [
        "render", settings.avatar, "-o", settings.output,
        "--lightings", settings.lightings, `--views=${settings.views}`, "--expressions", settings.expressions,
        "--engine", settings.engine, "--resolution", String(settings.resolution), "--samples", String(settings.samples),
    ];
}

function splitList(text) {
    return String(text).split(",").map((item) => item.trim()).filter((item) => item.length > 0);
}

function plannedTasks(settings) {
    let listed;
    try {
        listed = JSON.parse(settings.tasks_json);
    } catch (error) {
        throw `Tasks JSON is not JSON (${error}); paste the output of studio-avatar render ... --list-tasks`;
    }
    const tasks = Array.isArray(listed) ? listed : listed.tasks;
    if (!Array.isArray(tasks) || tasks.length === 0) {
        throw "Tasks JSON lists no tasks; paste the output of studio-avatar render ... --list-tasks";
    }
    // the list must be of this job's matrix: a stale one would render the wrong images
    const expected = splitList(settings.lightings).length * splitList(settings.views).length
        * splitList(settings.expressions).length;
    if (tasks.length !== expected) {
        throw `Tasks JSON has ${tasks.length} tasks but the lightings x views x expressions make ${expected}; `
            + "run --list-tasks again with this job's settings";
    }
    return tasks;
}

function compileJob(job) {
    const settings = job.settings;
    const tasks = plannedTasks(settings);
    const renders = [];
    for (const planned of tasks) {
        const task = author.Task(`render-${planned.index} ${planned.file}`, "misc");
        task.addCommand(author.Command("exec", {
            exe: settings.studio_avatar,
            args: matrixArgs(settings).concat(["--task", String(planned.index)]),
        }));
        job.addTask(task);
        renders.push(task);
    }
    const sheet = author.Task("contact-sheet", "misc");
    sheet.addCommand(author.Command("exec", {
        exe: settings.studio_avatar,
        args: matrixArgs(settings).concat(["--contact-sheet-only"]),
    }));
    for (const task of renders) {
        sheet.addDependency(task);
    }
    job.addTask(sheet);
}

// Flamenco evaluates this file as a script; Node (the tests) loads it as a module
if (typeof module !== "undefined") {
    module.exports = { JOB_TYPE, compileJob };
}
