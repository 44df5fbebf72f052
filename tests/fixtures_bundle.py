"""A real, tiny bundle built once per test session through host/build.py (the user's command).

Other tests (device runtime, profiling) take the `tiny_bundle` fixture: the Path of a bundle
folder with model/manifest.json, trunk.tflite, subnet_1..3.tflite (fp32),
eval.npz and the device/ copy. Scripts can call build_tiny_bundle(out_dir) directly.

The network is deliberately small (ResNet branches of 1/8 width, 3 subnets, 32 px, a few
training steps on shared CIFAR-10 images) so the build takes well under a minute; its
accuracy is near chance, which is fine for exercising the plumbing.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_dir

REPO = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--arch", "resnet", "--subnets", "3", "--widths", "0.125,0.125,0.125", "--img-size", "32",
             "--limit-train", "128", "--batch-size", "32", "--epochs", "1", "--calib-size", "200",
             "--limit-test", "1000"]
BUILD_LOG = "build.log"


# a width-switching method's tiny ladder: the whole network at 1/8, 1/4 and 3/8 of its width
TINY_WIDTHS = {"slimmable": "0.125,0.25,0.375", "single-path": "0.125,0.25,0.375"}


def build_tiny_bundle(out_dir: Path, data: Path | None = None, method: str = "concat") -> Path:
    """Run host/build.py on the tiny config of `method` into out_dir/dist; return the bundle folder.

    `data` defaults to the shared CIFAR-10 archive. stdout and stderr are kept in
    out_dir/build.log; a failed build raises with its tail.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = data or shared_dir() / "datasets" / "cifar10-jpg.tar.gz"
    args = list(TINY_ARGS)
    if method != "concat":
        args[args.index("--widths") + 1] = TINY_WIDTHS[method]
        args += ["--method", method]
    cmd = [sys.executable, str(REPO / "host" / "build.py"), *args, "--data", str(data),
           "--checkpoint-out", str(out_dir / "checkpoint"), "--out", str(out_dir / "dist")]
    # one OpenMP thread: on a shared 2-core host, torch's spinning worker threads slow a tiny
    # network's training by orders of magnitude (seen: minutes per step instead of ~0.5 s)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    (out_dir / BUILD_LOG).write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    if proc.returncode != 0:
        raise RuntimeError(f"tiny bundle build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return out_dir / "dist" / ("resnet-cifar10" + ("" if method == "concat" else f"-{method}"))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, cifar_tar) -> Path:
    """The folder of a real tiny bundle (model/, device/, README.md, ...), built once per session."""
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny_bundle"), cifar_tar)
