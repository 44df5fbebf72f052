"""Find, verify and load a dynedge bundle (shared/DESIGN.md section 5).

A bundle is trusted only after its manifest validates and every file it lists matches its
sha256; a refusal names the file. Nothing in a bundle is executed or unpickled: the manifest
is JSON and the eval set is read with np.load(allow_pickle=False).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from device.bundle.ladder import Ladder, ladder_from
from device.bundle.manifest import MANIFEST_NAME, ManifestError, validate_manifest
from device.errors import UserError
from device.policy.exits import control_table

MODEL_DIR = "model"


class BundleError(UserError):
    """A bundle that is missing, damaged or not understood; the message names the file."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its model/ folder and the manifest that describes it."""
    model_dir: Path
    manifest: dict

    @property
    def num_subnets(self) -> int:
        """The exits of the ladder ("subnets": each exit is one subnet of the method's network)."""
        return len(self.manifest["exits"])

    @property
    def method(self) -> str:
        return self.manifest["method"]

    @property
    def labels(self) -> list:
        return list(self.manifest["labels"])

    @property
    def input_size(self) -> tuple[int, int]:
        spec = self.manifest["input"]
        return int(spec["height"]), int(spec["width"])

    @property
    def name(self) -> str:
        return self.model_dir.resolve().parent.name

    def entropy_quantiles(self) -> np.ndarray:
        """(K, QUANTILE_POINTS) calibrated entropy quantiles, subnet 1 first."""
        return np.array([e["entropy_quantiles"] for e in self.manifest["exits"]], dtype=np.float64)

    def control_table(self) -> np.ndarray:
        """(P, K) entropy thresholds, one row per point of the calibrated router curve."""
        levels = np.array([p["levels"] for p in self.manifest["router"]["curve"]], dtype=np.float64)
        return control_table(self.entropy_quantiles(), levels.reshape(len(levels), -1))

    def precisions(self) -> list[str]:
        return list(self.manifest["precisions"])

    def ladder(self, precision: str = "fp32") -> Ladder:
        """The stages (with their files of `precision`) and exits the engine runs."""
        entry = self.manifest["precisions"].get(precision)
        if entry is None:
            raise BundleError(f"bundle {self.model_dir} has no '{precision}' model; "
                              f"available: {', '.join(self.precisions())}")
        return ladder_from(self.manifest["stages"], self.manifest["exits"], entry["files"], self.model_dir,
                           len(self.labels))

    def eval_set(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(images (N, H, W, 3) uint8 RGB, labels (N,) int64) carried in the bundle, or None."""
        spec = self.manifest.get("eval_set")
        if not spec:
            return None
        path = self.model_dir / spec["file"]
        try:
            with np.load(path, allow_pickle=False) as data:
                return data["images"], data["labels"]
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{path}: cannot read the eval set ({exc})") from None


def find_model_dir(path: str | Path) -> Path:
    """The model/ folder of a bundle given its root, its model/ folder or its manifest."""
    path = Path(path)
    for candidate in (path / MODEL_DIR, path, path.parent if path.name == MANIFEST_NAME else None):
        if candidate is not None and (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise BundleError(f"{path / MODEL_DIR / MANIFEST_NAME}: no bundle manifest there; pass "
                      f"--bundle with the folder that holds model/{MANIFEST_NAME}")


def default_bundle_dir() -> Path:
    """The folder that holds this device/ folder, when it is a bundle (model/ beside device/)."""
    root = Path(__file__).resolve().parents[2]
    if (root / MODEL_DIR / MANIFEST_NAME).is_file():
        return root
    raise BundleError(f"no bundle at {root / MODEL_DIR}; run from inside an unpacked bundle "
                      f"or pass --bundle PATH (e.g. --bundle dist/mobilenet-cifar10)")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _safe_relative(model_dir: Path, relative: str) -> Path:
    """Refuse absolute paths and '..' so a manifest cannot point outside model/."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise BundleError(f"{model_dir / MANIFEST_NAME}: file entry '{relative}' leaves model/")
    return model_dir / pure


def verify_files(model_dir: Path, manifest: dict) -> None:
    """Every listed file exists with its sha256, and every model file is listed."""
    files = manifest["files"]
    for relative, meta in files.items():
        path = _safe_relative(model_dir, relative)
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle (the manifest lists it); "
                              f"copy the whole bundle again")
        if sha256_of(path) != meta.get("sha256"):
            raise BundleError(f"{path}: sha256 does not match the manifest; the file is damaged or "
                              f"was modified, copy the bundle again or rebuild it")
    for precision, entry in manifest["precisions"].items():
        for relative in entry["files"].values():
            if relative not in files:
                raise BundleError(f"{model_dir / relative}: {precision} model file is not listed "
                                  f"with a sha256 in the manifest; refusing an unverified file")
    eval_spec = manifest.get("eval_set")
    if eval_spec and eval_spec.get("file") not in files:
        raise BundleError(f"{model_dir / str(eval_spec.get('file'))}: eval set is not listed "
                          f"with a sha256 in the manifest")


def load_bundle(path: str | Path) -> Bundle:
    """Locate, validate and verify a bundle; raise BundleError naming the offending file."""
    model_dir = find_model_dir(path)
    manifest_path = model_dir / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not readable JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: not a JSON object")
    try:
        validate_manifest(manifest)
    except ManifestError as exc:
        raise BundleError(f"{manifest_path}: {exc}") from None
    verify_files(model_dir, manifest)
    return Bundle(model_dir=model_dir, manifest=manifest)
