"""The progress protocol: events, ETA, throttling, monotonic sub-ranges, parsing, cancel."""

import io
import json

import pytest

from studio_avatar.core.errors import Cancelled
from studio_avatar.core.progress import (
    CallbackSink, CancelToken, JsonLinesSink, Progress, TextSink, format_duration, parse_event,
)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def collecting(min_interval_s=0.0, clock=None):
    events = []
    return Progress(CallbackSink(events.append), min_interval_s=min_interval_s, clock=clock or FakeClock()), events


def test_eta_is_linear_extrapolation_once_there_is_evidence():
    clock = FakeClock()
    progress, events = collecting(clock=clock)
    stage = progress.stage("fit")
    stage.update(0.0, "start")
    clock.now += 10.0
    stage.update(0.25, "quarter")
    clock.now += 10.0
    stage.update(0.5, "half")
    assert events[0]["eta_s"] is None
    assert events[1] == {"type": "progress", "stage": "fit", "fraction": 0.25, "message": "quarter", "eta_s": 30.0}
    assert events[2]["eta_s"] == pytest.approx(20.0)


def test_updates_are_throttled_but_completion_always_reported():
    clock = FakeClock()
    progress, events = collecting(min_interval_s=1.0, clock=clock)
    stage = progress.stage("unwrap")
    for i in range(1, 11):
        clock.now += 0.05
        stage.update(i / 10)
    fractions = [e["fraction"] for e in events]
    assert fractions == [0.1, 1.0]


def test_sub_ranges_map_into_the_parent_and_never_go_backwards():
    progress, events = collecting()
    stage = progress.stage("track")
    first, second = stage.sub(0.0, 0.5), stage.sub(0.5, 1.0)
    first.update(1.0)
    second.update(0.5)
    first.update(0.2)  # late report from an earlier part must not move the bar back
    assert [e["fraction"] for e in events] == [0.5, 0.75, 0.75]


def test_iterate_reports_each_item():
    progress, events = collecting()
    assert list(progress.stage("s").iterate(["a", "b"], total=2, message="{done}/{total}")) == ["a", "b"]
    assert [(e["fraction"], e["message"]) for e in events] == [(0.0, "0/2"), (0.5, "1/2"), (1.0, "2/2")]


def test_cancel_raises_at_the_next_update():
    token = CancelToken()
    progress = Progress(cancel=token)
    stage = progress.stage("s")
    stage.update(0.1)
    token.cancel()
    with pytest.raises(Cancelled, match="resume"):
        stage.update(0.2)


def test_json_lines_round_trip_and_parser_ignores_noise():
    stream = io.StringIO()
    progress = Progress(JsonLinesSink(stream), min_interval_s=0)
    progress.stage("frames").update(0.5, "decoding")
    progress.warning("frames", "dark clip")
    progress.emit("result", data={"ok": True})
    lines = stream.getvalue().splitlines()
    events = [parse_event(line) for line in lines + ["hello", "{broken", '{"type": "other"}', "[1]"]]
    assert [e["type"] for e in events[:3]] == ["progress", "warning", "result"]
    assert events[3:] == [None, None, None, None]
    assert all(json.loads(line) for line in lines)


def test_text_sink_is_readable():
    stream = io.StringIO()
    sink = TextSink(stream)
    sink.emit({"type": "progress", "stage": "fit", "fraction": 0.5, "message": "iter 50/100", "eta_s": 75})
    sink.emit({"type": "stage", "stage": "fit", "status": "done", "duration_s": 150})
    sink.emit({"type": "stage", "stage": "unwrap", "status": "skipped", "duration_s": 0})
    assert stream.getvalue().splitlines() == [
        "[fit]  50.0%  iter 50/100  ETA 1m15s",
        "[fit] done in 2m30s",
        "[unwrap] up to date, skipped",
    ]


@pytest.mark.parametrize("seconds,text", [(3.21, "3.2s"), (42, "42s"), (61, "1m01s"), (3600 * 2 + 60, "2h01m")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
