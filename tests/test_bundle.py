"""The bundle writer: manifest round trip, sha256 of every file, atomic writes, --force."""
import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from converters import bundle as bundle_mod
from converters.bundle import BundleExistsError, BundleSpec, PrecisionFiles, write_bundle
from device.bundle.loader import BundleError, load_bundle
from device.bundle.manifest import validate_manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_round_trip(tiny_bundle):
    text = (tiny_bundle / "model" / "manifest.json").read_text()
    manifest = validate_manifest(json.loads(text))
    assert json.loads(json.dumps(manifest)) == manifest
    assert [s["index"] for s in manifest["exits"]] == [1, 2, 3]
    assert all(len(s["entropy_quantiles"]) == 101 for s in manifest["exits"])
    assert manifest["input"]["layout"] == "NHWC" and manifest["input"]["range"] == [0, 255]
    assert {"initial", "floor", "curve"} <= set(manifest["router"])
    assert manifest["eval_set"]["count"] == 500


def test_every_model_file_has_its_sha256(tiny_bundle):
    model = tiny_bundle / "model"
    files = json.loads((model / "manifest.json").read_text())["files"]
    on_disk = {p.name for p in model.iterdir() if p.name != "manifest.json"}
    assert set(files) == on_disk
    for name, meta in files.items():
        assert meta["sha256"] == sha256(model / name)
        assert meta["bytes"] == (model / name).stat().st_size


def test_tampering_is_detected(tiny_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    target = copy / "model" / "subnet_2.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    recorded = json.loads((copy / "model" / "manifest.json").read_text())["files"]["subnet_2.tflite"]
    assert sha256(target) != recorded["sha256"]
    with pytest.raises(BundleError, match="subnet_2.tflite"):
        load_bundle(copy)


def test_eval_set_is_plain_arrays(tiny_bundle):
    with np.load(tiny_bundle / "model" / "eval.npz", allow_pickle=False) as data:
        assert data["images"].dtype == np.uint8 and data["images"].shape == (500, 32, 32, 3)
        assert data["labels"].dtype == np.int64


def test_bundle_carries_runtime_and_archive_matches(tiny_bundle):
    assert (tiny_bundle / "device" / "bundle" / "manifest.py").is_file()
    assert not list(tiny_bundle.rglob("__pycache__"))
    assert (tiny_bundle / "requirements-device.txt").is_file()
    assert "requirements-device.txt" in (tiny_bundle / "README.md").read_text()
    with tarfile.open(tiny_bundle.with_name(tiny_bundle.name + ".tar.gz")) as tar:
        names = set(tar.getnames())
    assert f"{tiny_bundle.name}/model/manifest.json" in names
    assert f"{tiny_bundle.name}/device/bundle/manifest.py" in names


def spec_from(bundle: Path) -> BundleSpec:
    """A BundleSpec rebuilt from an existing bundle, to exercise the writer alone."""
    m = json.loads((bundle / "model" / "manifest.json").read_text())
    model = bundle / "model"
    with np.load(model / "eval.npz") as data:
        images, labels = data["images"], data["labels"]
    fp32 = m["precisions"]["fp32"]
    return BundleSpec(name=bundle.name, method=m["method"], arch=m["arch"], dataset=m["dataset"], labels=m["labels"],
                      img_size=m["input"]["height"], stages=m["stages"], exits=m["exits"], router=m["router"],
                      precisions={"fp32": PrecisionFiles({n: model / f for n, f in fp32["files"].items()},
                                                         fp32["parity"])},
                      eval_images=images, eval_labels=labels)


def test_existing_output_is_refused_unless_forced(tiny_bundle, tmp_path):
    spec = spec_from(tiny_bundle)
    folder, archive = write_bundle(spec, tmp_path)
    with pytest.raises(BundleExistsError, match="--force"):
        write_bundle(spec, tmp_path)
    (folder / "marker").write_text("old")
    folder, archive = write_bundle(spec, tmp_path, force=True)
    assert not (folder / "marker").exists() and archive.is_file()
    load_bundle(folder)


def test_interrupted_write_leaves_no_bundle(tiny_bundle, tmp_path, monkeypatch):
    spec = spec_from(tiny_bundle)

    def power_cut(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod, "manifest_for", power_cut)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []
