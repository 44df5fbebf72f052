"""Fakes for device/ unit tests: interpreters with the TFLite Python interface, a clock, sensors.

A fake interpreter computes something simple and checkable in numpy and advances a fake
clock by a set cost per invoke, so the deadline guard and the router are tested without
timing anything.
"""
from pathlib import Path

import numpy as np

from device.bundle.loader import Bundle
from device.policy.exits import QUANTILE_POINTS, softmax_entropy


class FakeClock:
    def __init__(self, start: float = 100.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeInterpreter:
    """Signature tensors args_*/output_* with fixed shapes; `compute(inputs) -> outputs`."""

    def __init__(self, input_shapes, output_shapes, compute, clock=None, cost_s=0.0):
        names_in = [f"args_{i}" for i in range(len(input_shapes))]
        names_out = [f"output_{i}" for i in range(len(output_shapes))]
        self._in = [dict(name=f"serving_default_{n}", index=i, shape=np.array(s), dtype=np.float32,
                         quantization=(0.0, 0)) for i, (n, s) in enumerate(zip(names_in, input_shapes))]
        base = len(self._in) + 10
        self._out = [dict(name=f"serving_default_{n}_output", index=base + i, shape=np.array(s),
                          dtype=np.float32, quantization=(0.0, 0))
                     for i, (n, s) in enumerate(zip(names_out, output_shapes))]
        self._sig = {"serving_default": {"inputs": {n: d["index"] for n, d in zip(names_in, self._in)},
                                         "outputs": {n: d["index"] for n, d in zip(names_out, self._out)}}}
        self._tensors = {d["index"]: np.zeros(tuple(d["shape"]), np.float32) for d in self._in + self._out}
        self.compute = compute
        self.clock = clock
        self.cost_s = cost_s
        self.invokes = 0

    def get_input_details(self):
        return list(self._in)

    def get_output_details(self):
        return list(self._out)

    def _get_full_signature_list(self):
        return self._sig

    def allocate_tensors(self):
        pass

    def tensor(self, index):
        return lambda: self._tensors[index]

    def set_tensor(self, index, value):
        np.copyto(self._tensors[index], value)

    def get_tensor(self, index):
        return self._tensors[index].copy()

    def invoke(self):
        self.invokes += 1
        outs = self.compute(*[self._tensors[d["index"]] for d in self._in])
        for d, value in zip(self._out, outs):
            self._tensors[d["index"]][...] = value
        if self.clock is not None:
            self.clock.advance(self.cost_s)


TRUNK_SHAPE = (1, 4, 4, 2)
FEATURE_DIM = 3
NUM_CLASSES = 5


def head(features: np.ndarray) -> np.ndarray:
    """The fake shared head: logits from the concatenated features (width picks the slice)."""
    d = features.shape[1]
    w = np.arange(d * NUM_CLASSES, dtype=np.float32).reshape(d, NUM_CLASSES) % 7 - 3
    return features @ w / d


def branch(trunk: np.ndarray, k: int) -> np.ndarray:
    return np.full((1, FEATURE_DIM), trunk.mean() * k, np.float32) + np.arange(FEATURE_DIM, dtype=np.float32)


def exit_statistics(logits: np.ndarray) -> np.ndarray:
    """What a subnet file's output_2 holds: [[softmax entropy, top-1 probability, top-1 class]]."""
    p = np.exp(logits - logits.max())
    return np.array([[softmax_entropy(logits)[0], p.max() / p.sum(), p.argmax()]], np.float32)


def reference_logits(image: np.ndarray, k: int) -> np.ndarray:
    """Subnet k recomputed from scratch (no cache): what the cascade must reproduce."""
    trunk = np.full(TRUNK_SHAPE, image.mean() / 255.0, np.float32)
    return head(np.concatenate([branch(trunk, j) for j in range(1, k + 1)], axis=1))


def fake_bundle(num_subnets: int = 3, size: int = 8) -> Bundle:
    """A Bundle whose model paths are names for fake_factory (no files, no sha256)."""
    quantiles = np.linspace(0.0, 2.0, QUANTILE_POINTS).tolist()
    subnets = [f"subnet_{k}" for k in range(1, num_subnets + 1)]
    stages = [{"name": "trunk", "inputs": [{"name": "args_0", "from": "image"}], "outputs": {"features": "output_0"}}]
    stages += [{"name": f"subnet_{k}",
                "inputs": [{"name": "args_0", "from": "trunk.features"}]
                + ([{"name": "args_1", "from": f"subnet_{k - 1}.features"}] if k > 1 else []),
                "outputs": {"features": "output_0", "logits": "output_1", "statistics": "output_2"}}
               for k in range(1, num_subnets + 1)]
    manifest = {
        "method": "concat",
        "labels": [f"class{i}" for i in range(NUM_CLASSES)],
        "input": {"height": size, "width": size, "channels": 3},
        "stages": stages,
        "exits": [{"index": k, "stages": ["trunk", *subnets[:k]], "answer": f"subnet_{k}",
                   "entropy_quantiles": quantiles} for k in range(1, num_subnets + 1)],
        "precisions": {"fp32": {"files": {name: name for name in ["trunk", *subnets]}}},
        "router": {"initial": 0.5, "floor": 0.2,  # a curve of one shared level for every subnet
                   "curve": [{"control": i / 50, "levels": [i / 50] * (num_subnets - 1)} for i in range(51)]},
        "files": {},
    }
    return Bundle(model_dir=Path("fake-model"), manifest=manifest)


def width_logits(image: np.ndarray, k: int) -> np.ndarray:
    """The fake width-k network: logits from the image alone, sharper with k."""
    return (np.arange(NUM_CLASSES, dtype=np.float32) * image.mean() / 255.0 * k)[None]


def fake_width_bundle(num_subnets: int = 3, size: int = 8) -> Bundle:
    """A width-switching bundle (slimmable's layout): exit k is one stage, width_k, fed by the image."""
    quantiles = np.linspace(0.0, 2.0, QUANTILE_POINTS).tolist()
    names = [f"width_{k}" for k in range(1, num_subnets + 1)]
    manifest = {
        "method": "slimmable",
        "labels": [f"class{i}" for i in range(NUM_CLASSES)],
        "input": {"height": size, "width": size, "channels": 3},
        "stages": [{"name": name, "inputs": [{"name": "args_0", "from": "image"}],
                    "outputs": {"logits": "output_0", "statistics": "output_1"}} for name in names],
        "exits": [{"index": k, "stages": [name], "answer": name, "entropy_quantiles": quantiles}
                  for k, name in enumerate(names, start=1)],
        "precisions": {"fp32": {"files": {name: name for name in names}}},
        "router": {"initial": 0.5, "floor": 0.2,
                   "curve": [{"control": i / 50, "levels": [i / 50] * (num_subnets - 1)} for i in range(51)]},
        "files": {},
    }
    return Bundle(model_dir=Path("fake-model"), manifest=manifest)


def fake_factory(size: int = 8, clock=None, costs=None):
    """interpreter_factory for Cascade: path name -> FakeInterpreter; costs: {name: seconds}."""
    costs = costs or {}
    made = {}

    def make(path, threads):
        name = str(path).rsplit("/", 1)[-1]
        if name.startswith("width_"):
            k = int(name.split("_")[1])

            def compute(image, k=k):
                logits = width_logits(image, k)
                return [logits, exit_statistics(logits)]
            interp = FakeInterpreter([(1, size, size, 3)], [(1, NUM_CLASSES), (1, 3)], compute, clock,
                                     costs.get(name, 0.0))
        elif name == "trunk":
            interp = FakeInterpreter([(1, size, size, 3)], [TRUNK_SHAPE],
                                     lambda x: [np.full(TRUNK_SHAPE, x.mean() / 255.0, np.float32)],
                                     clock, costs.get(name, 0.0))
        else:
            k = int(name.split("_")[1])
            shapes = [TRUNK_SHAPE] + ([(1, FEATURE_DIM * (k - 1))] if k > 1 else [])

            def compute(trunk, cached=None, k=k):
                f_k = branch(trunk, k)
                features = f_k if cached is None else np.concatenate([cached, f_k], axis=1)
                logits = head(features)
                return [features, logits, exit_statistics(logits)]
            interp = FakeInterpreter(shapes, [(1, FEATURE_DIM * k), (1, NUM_CLASSES), (1, 3)], compute,
                                     clock, costs.get(name, 0.0))
        made[name] = interp
        return interp

    make.made = made
    return make
