"""The bundle writer: dist/<arch>-<dataset>[-<method>]/ and its .tar.gz (shared/DESIGN.md section 5).

Everything is written into a hidden temporary folder beside the destination and renamed into
place only when complete, so an interrupted build never leaves a folder that looks like a
bundle. The manifest records the sha256 of every file under model/ and is validated with the
same code the board uses before it is written.
"""
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device.errors import UserError
from device.bundle.loader import sha256_of
from device.bundle.manifest import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, validate_manifest
from device.io.preprocess import MEAN_RGB, STD_RGB

REPO = Path(__file__).resolve().parents[1]
EVAL_FILE = "eval.npz"
BUNDLE_README = """# dynedge bundle: {name}

{arch} on {dataset}, method {method}, {k} exits, input {size}x{size} RGB. Precisions: {precisions}.

## Install on the board

```
scp -r {name} pi@raspberrypi.local:~/      # or copy and unpack {name}.tar.gz
cd ~/{name}
sh device/install.sh                       # the same command on every board
```

It finds the board (userland word size, Python, OS), makes `.venv` here and installs that
board's set from `device/requirements/`, wheels only, from the package index alone:

| board | Python | set |
|---|---|---|
| Raspberry Pi OS 64-bit (bookworm) | 3.11 | `pi-os-64.txt`: ai-edge-litert, numpy, OpenCV, psutil |
| Raspberry Pi OS 32-bit (bookworm, armhf; also on a Pi 4/5's 64-bit kernel) | 3.11 | `pi-os-32.txt`: tflite-runtime 2.14; numpy, OpenCV and psutil from apt, which has them where the package index has no armhf wheel: first `sudo apt install python3-numpy python3-opencv python3-psutil python3-venv` |
| Jetson, JetPack 5 (Ubuntu 20.04) | 3.8 | `jetpack-5.txt`: tflite-runtime 2.13, numpy 1.24 |
| Jetson, JetPack 6 (Ubuntu 22.04) | 3.10 | `jetpack-6.txt`: ai-edge-litert, numpy 2.2 |
| x86_64 Linux | 3.10-3.13 | `x86_64.txt`, the set `requirements-device.txt` names |

On Ubuntu and JetPack, `python3 -m venv` needs `sudo apt install python3-venv` first. Any
other combination gets one line saying what to use instead, and nothing is installed.
`sh device/install.sh --dry-run` names the set without installing it.

A Pi camera needs Picamera2, which Raspberry Pi OS ships through apt (`sudo apt install
python3-picamera2`), and a Jetson CSI camera JetPack's GStreamer-enabled OpenCV: install with
`sh device/install.sh --system-site-packages` so that the venv sees them.

## Run

```
.venv/bin/python device/run_camera.py --budget 40ms          # finds model/ beside device/
.venv/bin/python device/profile.py                           # measure this board
```

`model/manifest.json` lists every file with its sha256; the runtime refuses a bundle whose
files do not match. `model/eval.npz` holds {eval_count} labeled test images (uint8 RGB) for
measuring accuracy on the board.

## Exits

| exit | stages | MACs (alone) | MACs (after exits below) | params | top-1 (PyTorch) |
|---|---|---|---|---|---|
{rows}
"""


class BundleExistsError(UserError, FileExistsError):
    """The output folder is there already and --force was not given."""


@dataclass
class PrecisionFiles:
    """One precision's exported files ({stage name: path}) and their parity figures."""
    files: dict
    parity: dict
    cascade: dict = field(default_factory=dict)


@dataclass
class BundleSpec:
    """What goes into a bundle; `stages` and `exits` entries follow device/bundle/manifest.py."""
    name: str                  # the bundle folder's name, e.g. mobilenet-imagenette-slimmable
    method: str
    arch: str
    dataset: str
    labels: list
    img_size: int
    stages: list
    exits: list
    router: dict
    precisions: dict           # name -> PrecisionFiles, "fp32" first
    eval_images: np.ndarray    # (N, H, W, 3) uint8 RGB
    eval_labels: np.ndarray
    data: dict = field(default_factory=dict)  # host.data.Splits.describe(): split sizes and how


def manifest_for(spec: BundleSpec, model_dir: Path) -> dict:
    """The manifest of the files already written into `model_dir`, validated."""
    files = {p.name: {"sha256": sha256_of(p), "bytes": p.stat().st_size}
             for p in sorted(model_dir.iterdir()) if p.name != MANIFEST_NAME}
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": spec.method,
        "arch": spec.arch,
        "dataset": spec.dataset,
        "data": spec.data,
        "labels": list(spec.labels),
        "input": {"height": spec.img_size, "width": spec.img_size, "channels": 3, "layout": "NHWC",
                  "color": "RGB", "dtype": "float32", "range": [0, 255],
                  "mean_rgb": list(MEAN_RGB), "std_rgb": list(STD_RGB)},
        "stages": spec.stages,
        "exits": spec.exits,
        "precisions": {
            name: {"files": {stage: path.name for stage, path in p.files.items()}, "parity": p.parity,
                   "cascade": p.cascade}
            for name, p in spec.precisions.items()
        },
        "files": files,
        "router": spec.router,
        "eval_set": {"file": EVAL_FILE, "count": int(len(spec.eval_labels))},
    }
    return validate_manifest(manifest)


def readme_for(spec: BundleSpec) -> str:
    rows = "\n".join(
        f"| {e['index']} | {' + '.join(e['stages'])} | {e['macs_alone'] / 1e6:.1f} M | {e['macs_cumulative'] / 1e6:.1f} M "
        f"| {e['params'] / 1e6:.2f} M | {e['accuracy']:.2%} |" for e in spec.exits)
    return BUNDLE_README.format(name=spec.name, arch=spec.arch, dataset=spec.dataset, method=spec.method,
                                k=len(spec.exits),
                                size=spec.img_size, precisions=", ".join(spec.precisions),
                                eval_count=len(spec.eval_labels), rows=rows)


def fill(stage: Path, spec: BundleSpec) -> None:
    """Write the whole bundle into the (empty) folder `stage`."""
    shutil.copytree(REPO / "device", stage / "device", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (REPO / "profiles").is_dir():  # board profiles, not the reports measured on this host
        shutil.copytree(REPO / "profiles", stage / "profiles", ignore=shutil.ignore_patterns("__pycache__", "reports"))
    shutil.copy2(REPO / "requirements-device.txt", stage / "requirements-device.txt")
    (stage / "README.md").write_text(readme_for(spec))
    model_dir = stage / "model"
    model_dir.mkdir()
    for precision in spec.precisions.values():
        for path in precision.files.values():
            shutil.copy2(path, model_dir / path.name)
    np.savez_compressed(model_dir / EVAL_FILE, images=spec.eval_images.astype(np.uint8),
                        labels=spec.eval_labels.astype(np.int64))
    manifest = manifest_for(spec, model_dir)
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))


def refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise BundleExistsError(f"{path} already exists; pass --force to replace it "
                                f"or write elsewhere (--out)")


def write_bundle(spec: BundleSpec, out_root: Path, force: bool = False) -> tuple:
    """Write <out_root>/<spec.name>/ and its .tar.gz atomically; return (folder, archive)."""
    dest = Path(out_root) / spec.name
    archive = dest.with_name(dest.name + ".tar.gz")
    refuse_existing(dest, force)
    refuse_existing(archive, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        fill(stage, spec)
        staged_archive = stage.with_name(stage.name + ".tar.gz")
        with tarfile.open(staged_archive, "w:gz") as tar:
            tar.add(stage, arcname=spec.name)
        replace(stage, dest)
        os.replace(staged_archive, archive)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        stage.with_name(stage.name + ".tar.gz").unlink(missing_ok=True)
    return dest, archive


def replace(stage: Path, dest: Path) -> None:
    """Move the finished `stage` to `dest`, setting an older `dest` aside until the move is done."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(stage, dest)
    shutil.rmtree(old, ignore_errors=True)
