"""Fake worker: emits a progress event every 20 ms until stopped.

``--worker stubborn`` ignores "cancel" on stdin (the client must terminate it);
``--worker polite`` exits with code 130 on "cancel".
"""

import json
import sys
import threading
import time


def main():
    polite = sys.argv[-1] == "polite"
    stop = threading.Event()

    def watch():
        for line in sys.stdin:
            if line.strip() == "cancel" and polite:
                stop.set()

    threading.Thread(target=watch, daemon=True).start()
    i = 0
    while not stop.is_set():
        print(json.dumps({"type": "progress", "stage": "forever", "fraction": 0.0, "message": str(i), "eta_s": None}), flush=True)
        i += 1
        time.sleep(0.02)
    print(json.dumps({"type": "error", "message": "cancelled politely", "error": "Cancelled", "exit_code": 130}), flush=True)
    return 130


def exit_process(code):
    """What the launcher calls with main()'s return value (the real one also skips bpy's exit-time destructors)."""
    sys.exit(code)
