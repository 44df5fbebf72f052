#!/usr/bin/env python3
"""dynedge camera daemon: classify frames with a latency budget.

    python device/run_camera.py --budget 40ms                         (inside an unpacked bundle)
    python device/run_camera.py --bundle dist/mobilenet-cifar10 --source video.avi --log frames.jsonl

`--help` lists the flags; device/service/camera.py holds the daemon.
"""
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import from the folder holding device/, not device/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from device.service.camera import main  # noqa: E402
from device.service.runtime_logs import run_script  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_script(main))
