"""Outputs of model files through the board engine: every exit's on a batch of images (what
parity and the compatibility check compare), and one file's on float arrays (ModelFile).

Run as a module from a folder that holds device/ (a bundle, or the repository), e.g. under
tflite-runtime 2.14 with numpy 1.26:

    python -m device.engine.outputs MODEL_DIR IMAGES.npy OUTPUTS.npz --runtime tflite-runtime --precision fp32
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from device.bundle.ladder import ladder_from
from device.engine.cascade import Cascade
from device.engine.runtime import RUNTIMES, stage_factory


class ExitOutputs(NamedTuple):
    """For N images: logits (K, N, classes) and the exit statistics (K, N, 3): [softmax entropy,
    top-1 probability, top-1 class] as each file computed them."""
    logits: np.ndarray
    exit_stats: np.ndarray


def exit_outputs(cascade: Cascade, images: np.ndarray) -> ExitOutputs:
    """Every image (N, H, W, 3) at the model's size, uint8 or float, through every exit, one frame
    at a time as the board runs them."""
    logits, stats = [], []
    ks = range(1, cascade.num_subnets + 1)
    for image in images:
        cascade.run_all(np.asarray(image, np.float32)[None])
        logits.append([cascade.logits(k)[0].copy() for k in ks])
        stats.append([cascade.exit_statistics(k) for k in ks])
    return ExitOutputs(np.asarray(logits, np.float32).transpose(1, 0, 2), np.asarray(stats, np.float32).transpose(1, 0, 2))


class ModelFile:
    """One .tflite file as an engine stage, called on float32 arrays: inputs are its signature's
    args_0, args_1, ... and outputs output_0, output_1, ..., quantized and dequantized with each
    tensor's own scale where the file is int8. For checks and benchmarks of single files."""

    def __init__(self, path, runtime: str | None = None, threads: int = 1):
        self.path = Path(path)
        self.stage = stage_factory(runtime)(self.path.stem, self.path, threads, time.perf_counter)
        self.inputs = [self.stage.port("input", n) for n in sorted(self.stage.inputs)]
        self.output_names = sorted(self.stage.outputs)

    def __call__(self, *arrays: np.ndarray) -> list:
        if len(arrays) != len(self.inputs):
            raise ValueError(f"{self.path.name} takes {len(self.inputs)} input(s), given {len(arrays)}")
        for port, array in zip(self.inputs, arrays):
            port.write(np.asarray(array, np.float32))
        self.stage.run()
        return [self.stage.read_output(name) for name in self.output_names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="folder with manifest.json and the .tflite files it names")
    parser.add_argument("images", type=Path, help=".npy of (N, H, W, 3) images at the model's size")
    parser.add_argument("out", type=Path, help=".npz to write logits (K, N, classes) and exit_stats (K, N, 3) to")
    parser.add_argument("--runtime", choices=list(RUNTIMES))
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    ladder = ladder_from(manifest["stages"], manifest["exits"], manifest["precisions"][args.precision]["files"],
                         args.model_dir, None)
    images = np.load(args.images, allow_pickle=False)
    cascade = Cascade.from_ladder(ladder, runtime=args.runtime, threads=1)
    outputs = exit_outputs(cascade, images)
    np.savez(args.out, logits=outputs.logits, exit_stats=outputs.exit_stats)


if __name__ == "__main__":
    main()
