#!/usr/bin/env python3
"""Train, evaluate and calibrate the dynamic network (no export).

    python host/train.py --arch mobilenet --data ../shared/datasets/cifar10-jpg.tar.gz --preset quick

`--help` lists the flags (host/cli.py); host/training.py holds the training loop.
"""
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import from the repository root, not host/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from device.flags import run_cli  # noqa: E402
from host.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main))
