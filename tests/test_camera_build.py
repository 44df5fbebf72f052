"""A tiny camera-scale build end to end: real Imagenette photographs in a flat folder of class
folders whose names hold spaces and non-ASCII letters, `--preset camera`, the daemon on an image
folder and on a paced video; the names reach the manifest and the JSON lines as they are."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import shared_dir

REPO = Path(__file__).resolve().parents[1]
# Imagenette classes -> the names the user's folders have
RENAMED = {"golf_ball": "golf ball", "church": "église", "chain_saw": "chain saw"}
PER_CLASS = 60


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """A flat folder <class>/*.jpg of PER_CLASS Imagenette training photos per renamed class."""
    archive = shared_dir() / "datasets" / "imagenette-160.tar.gz"
    if not archive.is_file():
        pytest.fail(f"{archive} is missing: the tests need ../shared/datasets/imagenette-160.tar.gz")
    root = tmp_path_factory.mktemp("photos") / "my photos"
    taken = dict.fromkeys(RENAMED, 0)
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if member.isfile() and parts[1] == "train" and parts[2] in RENAMED and taken[parts[2]] < PER_CLASS:
                target = root / RENAMED[parts[2]] / parts[3]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                taken[parts[2]] += 1
            if all(n == PER_CLASS for n in taken.values()):
                break
    return root


@pytest.mark.slow
def test_a_camera_build_of_a_users_photo_folders_runs_in_the_daemon(photo_folder, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DYNEDGE_CACHE": str(tmp_path / "cache")}
    build = subprocess.run(
        [sys.executable, "host/build.py", "--arch", "mobilenet", "--preset", "camera", "--img-size", "96",
         "--widths", "0.125,0.125,0.125,0.125", "--epochs", "0.2", "--limit-test", "1000",
         "--data", str(photo_folder), "--checkpoint-out", str(tmp_path / "ck"), "--out", str(tmp_path / "dist")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    # a flat folder: the kit split it, said so, and recorded it
    assert "made here: a seeded, stratified 20% of every class held out for test" in build.stderr
    bundle = tmp_path / "dist" / "mobilenet-my_photos"  # a folder name scp takes unquoted
    manifest = json.loads((bundle / "model" / "manifest.json").read_text())
    assert manifest["labels"] == sorted(RENAMED.values()) and manifest["input"]["height"] == 96
    assert manifest["data"]["test"] == round(0.2 * PER_CLASS) * len(RENAMED)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, image in enumerate(np.load(bundle / "model" / "eval.npz")["images"][:12]):
        cv2.imwrite(str(frames / f"{i:02d}.png"), image[:, :, ::-1])
    log = tmp_path / "frames.jsonl"
    run = subprocess.run([sys.executable, "device/run_camera.py", "--bundle", str(bundle), "--source", str(frames),
                          "--fps", "30", "--log", str(log), "--board", "x86_64", "--threads", "1"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(lines) + lines[-1]["drops"] == 12
    assert {r["label"] for r in lines} <= set(RENAMED.values())  # spaces and 'é' as they were
