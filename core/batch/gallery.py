"""``OUT/index.html``: a static gallery of a batch, one card per video (contact sheet, status, error, timings).

Self-contained and offline: relative links to the images beside it, inline
CSS, no script; every text from a video or an error is HTML-escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..progress import format_duration

STYLE = """body{font:14px system-ui,sans-serif;margin:24px;background:#f4f4f4;color:#222}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:16px}
.card{background:#fff;border-radius:6px;padding:12px;box-shadow:0 1px 3px #0002}
.card img{width:100%;border-radius:4px}.done{color:#176a2b}.failed{color:#a11}.error{color:#a11;white-space:pre-wrap}
table{border-collapse:collapse;font-size:12px}td{padding:1px 8px 1px 0}"""


def write_gallery(path: Path, summary: dict[str, Any]) -> None:
    cards = "\n".join(_card(video) for video in summary["videos"])
    page = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Studio Avatar batch</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>Studio Avatar batch</h1>\n"
            f"<p>{summary['done']} of {len(summary['videos'])} videos done, {summary['failed']} failed, "
            f"in {html.escape(format_duration(summary['seconds']))}.</p>\n<div class=\"grid\">\n{cards}\n</div></body></html>\n")
    atomic_write_text(path, page)


def _card(video: dict[str, Any]) -> str:
    name, status = html.escape(video["name"]), html.escape(video["status"])
    sheet = video.get("contact_sheet")
    image = (f"<a href=\"{html.escape(name)}/{sheet}\"><img src=\"{html.escape(name)}/{sheet}\" alt=\"{name}\"></a>"
             if sheet else "<p>(no contact sheet)</p>")
    error = f"<p class=\"error\">{html.escape(video['error'])}</p>" if video.get("error") else ""
    timings = "".join(f"<tr><td>{html.escape(task)}</td><td>{html.escape(format_duration(seconds))}</td></tr>"
                      for task, seconds in video.get("timings_s", {}).items())
    exports = ", ".join(f"<a href=\"{name}/avatar.{html.escape(kind)}\">{html.escape(kind)}</a>" for kind in video.get("exports", []))
    return (f"<div class=\"card\"><h2>{name} <span class=\"{status}\">{status}</span></h2>{image}{error}"
            f"<p>{html.escape(Path(video['video']).name)}; renders {video.get('renders', 0)}/{video.get('renders_total', 0)}"
            f"{'; exports ' + exports if exports else ''}</p><table>{timings}</table></div>")
