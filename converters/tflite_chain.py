"""Run trunk.tflite then subnet_1..K.tflite on images, with nothing but numpy and a TFLite runtime.

The host uses it (ai-edge-litert) for parity and latency; the compatibility check runs this
file as a script under tflite-runtime 2.14 with numpy 1.26, which is why it imports neither
torch nor anything from this repository:

    .venv-tflrt/bin/python converters/tflite_chain.py MODEL_DIR IMAGES.npy OUTPUTS.npz \
        --runtime tflite_runtime --precision fp32
"""
import argparse
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

SIGNATURE = "serving_default"


def interpreter_class(runtime: str):
    """The Interpreter class of 'ai_edge_litert' or 'tflite_runtime'."""
    if runtime == "ai_edge_litert":
        from ai_edge_litert.interpreter import Interpreter
    elif runtime == "tflite_runtime":
        from tflite_runtime.interpreter import Interpreter
    else:
        raise ValueError(f"unknown runtime {runtime!r}; use ai_edge_litert or tflite_runtime")
    return Interpreter


class TFLiteFile:
    """One .tflite file, allocated once; inputs and outputs addressed by signature name (args_i, output_i).

    Callers always see float32: int8 PTQ files (litert-torch's PT2E path) can take and give
    int8 tensors at their boundaries, which are (de)quantized here with the tensor's own scale
    and zero point, exactly as the board runtime must do.
    """

    def __init__(self, path: Path, runtime: str = "ai_edge_litert", threads: int = 1):
        self.path = Path(path)
        self.interpreter = interpreter_class(runtime)(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.inputs = [tensor_io(d) for _, d in sorted(runner.get_input_details().items())]
        self.outputs = [tensor_io(d) for _, d in sorted(runner.get_output_details().items())]

    def __call__(self, *arrays: np.ndarray) -> list:
        for (index, dtype, scale, zero), array in zip(self.inputs, arrays):
            if dtype != np.float32:
                info = np.iinfo(dtype)
                array = np.clip(np.round(array / scale) + zero, info.min, info.max)
            self.interpreter.set_tensor(index, np.ascontiguousarray(array, dtype=dtype))
        self.interpreter.invoke()
        outs = []
        for index, dtype, scale, zero in self.outputs:
            value = self.interpreter.get_tensor(index)
            outs.append(value if dtype == np.float32 else (value.astype(np.float32) - zero) * np.float32(scale))
        return outs


def tensor_io(detail: dict) -> tuple:
    """(tensor index, dtype, scale, zero point) of one signature input or output."""
    scale, zero = detail["quantization"]
    return detail["index"], np.dtype(detail["dtype"]).type, float(scale), int(zero)


class ChainOutputs(NamedTuple):
    """What the files compute for N images: trunk tensors (N, h, w, C), logits (K, N, classes)
    and the subnets' exit statistics (K, N, 3): [softmax entropy, top-1 probability, top-1 class]."""
    trunk: np.ndarray
    logits: np.ndarray
    exit_stats: np.ndarray


class Chain:
    """trunk + subnets as the board runs them: subnet k reads the trunk tensor and the features
    [f_1..f_{k-1}] that subnet k-1 returned."""

    def __init__(self, trunk: Path, subnets: list, runtime: str = "ai_edge_litert", threads: int = 1):
        self.trunk = TFLiteFile(trunk, runtime, threads)
        self.subnets = [TFLiteFile(p, runtime, threads) for p in subnets]

    def run_image(self, image: np.ndarray) -> tuple:
        """(trunk tensor, [logits_k], [exit statistics_k]) for one (1, H, W, 3) float32 image, escalating to K."""
        (t,) = self.trunk(image)
        cached, logits, stats = None, [], []
        for k, subnet in enumerate(self.subnets, start=1):
            cached, out, exit_stats = subnet(t) if k == 1 else subnet(t, cached)
            logits.append(out[0])
            stats.append(exit_stats[0])
        return t[0], logits, stats

    def run(self, images: np.ndarray) -> ChainOutputs:
        """The chain on uint8 or float images (N, H, W, 3), one image at a time."""
        per_image = [self.run_image(image[None].astype(np.float32)) for image in images]
        trunks, logits, stats = zip(*per_image)
        return ChainOutputs(np.stack(trunks), np.stack(logits, axis=1), np.stack(stats, axis=1))

    def latency_ms(self, image: np.ndarray, repeats: int = 50, warmup: int = 5) -> dict:
        """Median ms of each file on cached inputs, plus the whole chain to K ('cascade')."""
        image = image[None].astype(np.float32) if image.ndim == 3 else image.astype(np.float32)
        (t,) = self.trunk(image)
        calls = {self.trunk.path.name: (self.trunk, (image,))}
        cached = None
        for k, subnet in enumerate(self.subnets, start=1):
            args = (t,) if k == 1 else (t, cached)
            calls[subnet.path.name] = (subnet, args)
            cached = subnet(*args)[0]
        calls["cascade"] = (self.run_image, (image,))
        return {name: median_ms(fn, args, repeats, warmup) for name, (fn, args) in calls.items()}


def median_ms(fn, args: tuple, repeats: int, warmup: int) -> float:
    """Median wall time of fn(*args) in milliseconds after a warm-up."""
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def chain_from_manifest(model_dir: Path, precision: str, runtime: str, threads: int = 1) -> Chain:
    """The Chain of one precision listed in model_dir/manifest.json."""
    entry = json.loads((Path(model_dir) / "manifest.json").read_text())["precisions"][precision]
    return Chain(Path(model_dir) / entry["trunk"], [Path(model_dir) / s for s in entry["subnets"]],
                 runtime, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("images", type=Path, help=".npy of (N, H, W, 3) images")
    parser.add_argument("out", type=Path, help=".npz to write logits (K, N, classes) and exit_stats (K, N, 3) to")
    parser.add_argument("--runtime", default="tflite_runtime", choices=["ai_edge_litert", "tflite_runtime"])
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    chain = chain_from_manifest(args.model_dir, args.precision, args.runtime)
    outputs = chain.run(np.load(args.images, allow_pickle=False))
    np.savez(args.out, logits=outputs.logits, exit_stats=outputs.exit_stats)


if __name__ == "__main__":
    main()
