"""Every bundle must run in tflite-runtime 2.14 (numpy 1.26) too, with the same top-1 as ai-edge-litert.

The check runs the board engine (`python -m device.engine.outputs`, from the bundle's own copy
of device/) in .venv-tflrt: numpy 1.26 and tflite_runtime, as on a 32-bit Raspberry Pi OS board.
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from converters.quantize import export_int8
from device.bundle.ladder import ladder_from
from device.engine import Cascade
from device.engine.outputs import exit_outputs
from device.policy.exits import softmax_entropy
from host import checkpoint, methods
from tests.torch_threads import one_thread  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[1]
TFLRT_PYTHON = REPO / ".venv-tflrt" / "bin" / "python"


def tflite_runtime_outputs(engine_root: Path, model_dir: Path, images: np.ndarray, tmp_path: Path, precision: str):
    """(logits (K, N, classes), exit statistics (K, N, 3)) of the files run in tflite-runtime 2.14 by
    the engine in engine_root/device/."""
    if not TFLRT_PYTHON.exists():
        pytest.fail(f"{TFLRT_PYTHON} is missing: run `bash scripts/setup.sh` to create the tflite-runtime 2.14 "
                    "environment every bundle is tested in")
    np.save(tmp_path / "images.npy", images)
    proc = subprocess.run([str(TFLRT_PYTHON), "-m", "device.engine.outputs", str(model_dir),
                           str(tmp_path / "images.npy"), str(tmp_path / "outputs.npz"),
                           "--runtime", "tflite-runtime", "--precision", precision],
                          capture_output=True, text=True, timeout=300, cwd=engine_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(tmp_path / "outputs.npz") as outputs:
        return outputs["logits"], outputs["exit_stats"]


def ai_edge_litert_outputs(model_dir: Path, precision: str, images: np.ndarray):
    """The same files through the engine here, in ai-edge-litert."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    ladder = ladder_from(manifest["stages"], manifest["exits"], manifest["precisions"][precision]["files"], model_dir,
                         None)
    return exit_outputs(Cascade.from_ladder(ladder, threads=1), images)


def test_tflite_runtime_gives_the_same_top1(tiny_bundle, tmp_path):
    model_dir = tiny_bundle / "model"
    with np.load(model_dir / "eval.npz", allow_pickle=False) as data:
        images = data["images"][:200]
    theirs, their_stats = tflite_runtime_outputs(tiny_bundle, model_dir, images, tmp_path, "fp32")
    ours = ai_edge_litert_outputs(model_dir, "fp32", images)
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
    files = export_int8(methods.get("concat").export_plan(net), images[:32], tmp_path)
    manifest = json.loads((tiny_bundle / "model" / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "precisions": {"int8": {
        "files": {name: path.name for name, path in files.items()}}}}))
    theirs, their_stats = tflite_runtime_outputs(REPO, tmp_path, images, tmp_path, "int8")
    ours = ai_edge_litert_outputs(tmp_path, "int8", images)
    assert theirs.shape == ours.logits.shape
    assert (theirs.argmax(-1) == ours.logits.argmax(-1)).mean() >= 0.97
    # each runtime's files compute the entropy of their own logits (kernels may round apart)
    np.testing.assert_allclose(their_stats[..., 0], softmax_entropy(theirs), atol=1e-4)
