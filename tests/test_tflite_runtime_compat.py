"""Every bundle must run in tflite-runtime 2.14 (numpy 1.26) too, with the same top-1 as ai-edge-litert.

The check runs converters/tflite_chain.py as a script in .venv-tflrt: it imports only numpy
and tflite_runtime, like the runtime on a 32-bit Raspberry Pi OS board.
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converters.quantize import export_int8
from converters.tflite_chain import chain_from_manifest
from device.entropy import softmax_entropy
from host import checkpoint
from tests.torch_threads import one_thread  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[1]
TFLRT_PYTHON = REPO / ".venv-tflrt" / "bin" / "python"


def tflite_runtime_outputs(model_dir: Path, images: np.ndarray, tmp_path: Path, precision: str):
    """(logits (K, N, classes), exit statistics (K, N, 3)) of the files run in tflite-runtime 2.14."""
    if not TFLRT_PYTHON.exists():
        pytest.fail(f"{TFLRT_PYTHON} is missing: run `bash scripts/setup.sh` to create the tflite-runtime 2.14 "
                    "environment every bundle is tested in")
    np.save(tmp_path / "images.npy", images)
    proc = subprocess.run([str(TFLRT_PYTHON), str(REPO / "converters" / "tflite_chain.py"), str(model_dir),
                           str(tmp_path / "images.npy"), str(tmp_path / "outputs.npz"),
                           "--runtime", "tflite_runtime", "--precision", precision],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(tmp_path / "outputs.npz") as outputs:
        return outputs["logits"], outputs["exit_stats"]


def test_tflite_runtime_gives_the_same_top1(tiny_bundle, tmp_path):
    model_dir = tiny_bundle / "model"
    with np.load(model_dir / "eval.npz", allow_pickle=False) as data:
        images = data["images"][:200]
    theirs, their_stats = tflite_runtime_outputs(model_dir, images, tmp_path, "fp32")
    ours = chain_from_manifest(model_dir, "fp32", "ai_edge_litert").run(images)
    assert theirs.shape == ours.logits.shape
    assert (theirs.argmax(-1) == ours.logits.argmax(-1)).all()
    assert np.abs(theirs - ours.logits).max() < 1e-4
    assert np.abs(their_stats - ours.exit_stats).max() < 1e-4  # the in-graph softmax runs there too


def test_tflite_runtime_runs_int8_files_alike(tiny_bundle, tmp_path):
    """int8 files (int8 up to the logits, names stripped) load in tflite-runtime 2.14 and give ai-edge-litert's top-1.

    The two runtimes' int8 kernels may round differently, so logits may differ by a few steps."""
    net, _ = checkpoint.load(tiny_bundle.parents[1] / "checkpoint")
    with np.load(tiny_bundle / "model" / "eval.npz", allow_pickle=False) as data:
        images = data["images"][:200]
    files = export_int8(net, images[:32], tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"precisions": {"int8": {
        "trunk": files.trunk.name, "subnets": [p.name for p in files.subnets]}}}))
    theirs, their_stats = tflite_runtime_outputs(tmp_path, images, tmp_path, "int8")
    ours = chain_from_manifest(tmp_path, "int8", "ai_edge_litert").run(images)
    assert theirs.shape == ours.logits.shape
    assert (theirs.argmax(-1) == ours.logits.argmax(-1)).mean() >= 0.97
    # each runtime's files compute the entropy of their own logits (kernels may round apart)
    np.testing.assert_allclose(their_stats[..., 0], softmax_entropy(theirs), atol=1e-4)
