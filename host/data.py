"""Image classification data as uint8 arrays: CIFAR-10 download, an ImageFolder tree, or a .tar.gz of one.

Decoding 60,000 JPEGs every epoch on a 2-core host is slow, so a source is decoded once
and cached as .npy arrays under ~/.cache/dynedge (or $DYNEDGE_CACHE), keyed by the
source's path, size and mtime and the image size. The calibration split is carved out
of the training images (never the test images) so calibration sees unseen data without
touching the figures reported on test.
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from device.errors import UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"  # raw bytes, no pickle
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_DIRS = {"train": ("train",), "test": ("test", "val")}
CACHE_VERSION = 1


class DataError(UserError, RuntimeError):
    """A data source that cannot be used; the message names the path and the fix."""


@dataclass
class Split:
    images: np.ndarray  # (N, H, W, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "Split":
        return Split(self.images[index], self.labels[index])


@dataclass
class Splits:
    train: Split
    calib: Split
    test: Split
    classes: list
    name: str
    skipped: int = 0  # unreadable images skipped while decoding


def cache_root() -> Path:
    return Path(os.environ.get("DYNEDGE_CACHE", Path.home() / ".cache" / "dynedge"))


def load_cifar_like(data=None, img_size: int = 32, limit_train: int | None = None, calib_size: int = 5000,
                    seed: int = 0, limit_test: int | None = None) -> Splits:
    """Train/calib/test splits from `data` (ImageFolder dir, .tar.gz of one, or None = CIFAR-10 download).

    calib_size images are held out of train at random (seeded); limit_train / limit_test
    then keep a random subset of what is left, for smoke runs.
    """
    if data is None:
        data = download_cifar10()
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist; pass --data with an ImageFolder "
                        "directory (train/<class>/*, test/<class>/*) or a .tar.gz of one")
    arrays = cached_arrays(path, img_size)
    rng = np.random.default_rng(seed)
    train_all = Split(arrays["train_images"], arrays["train_labels"])
    test = Split(arrays["test_images"], arrays["test_labels"])
    if calib_size >= len(train_all):
        raise DataError(f"{path}: calibration split of {calib_size} needs more than the "
                        f"{len(train_all)} training images; lower --calib-size")
    order = rng.permutation(len(train_all))
    calib, train = train_all.subset(np.sort(order[:calib_size])), train_all.subset(np.sort(order[calib_size:]))
    if limit_train is not None and limit_train < len(train):
        train = train.subset(np.sort(rng.permutation(len(train))[:limit_train]))
    if limit_test is not None and limit_test < len(test):
        test = test.subset(np.sort(rng.permutation(len(test))[:limit_test]))
    return Splits(train, calib, test, list(arrays["classes"]), arrays["name"], int(arrays["skipped"]))


def dataset_name(path: Path) -> str:
    """'cifar10' for cifar10-jpg.tar.gz or a cifar10/ folder: the name up to the first '-' or '.'."""
    return path.name.split(".")[0].split("-")[0] or "dataset"


def cached_arrays(path: Path, img_size: int) -> dict:
    """Decoded arrays for `path` at `img_size`, from the cache or decoded now and cached."""
    stat = path.stat()
    key_text = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{img_size}"
    folder = cache_root() / "arrays" / hashlib.sha1(key_text.encode()).hexdigest()[:16]
    if (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy") for name in meta["arrays"]}
        return {**arrays, **meta["info"]}
    splits, classes, skipped = decode_source(path, img_size)
    arrays = {}
    for split, (images, labels) in splits.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    info = {"classes": classes, "name": "cifar10" if path.name == CIFAR10_URL.rsplit("/", 1)[1] else dataset_name(path),
            "skipped": skipped}
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array)
    (tmp / "meta.json").write_text(json.dumps({"arrays": list(arrays), "info": info, "source": key_text}))
    try:
        tmp.rename(folder)
    except OSError:  # another process cached it first
        pass
    return {**arrays, **info}


def decode_source(path: Path, img_size: int):
    """({'train': (images, labels), 'test': (...)}, classes, skipped) from any supported source."""
    if path.is_file() and path.name == CIFAR10_URL.rsplit("/", 1)[1]:
        return decode_cifar10_binary(path, img_size)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return decode_entries(path, tar_entries(path), img_size)
    if path.is_dir():
        return decode_entries(path, folder_entries(path), img_size)
    raise DataError(f"data path {path} is neither a directory nor a .tar.gz; pass an ImageFolder "
                    "directory (train/<class>/*, test/<class>/*) or a .tar.gz of one")


def split_and_class(parts: tuple) -> tuple[str, str] | None:
    """('train'|'test', class) for a path like [prefix/]train/<class>/<file>, else None."""
    if len(parts) < 3:
        return None
    for split, names in SPLIT_DIRS.items():
        if parts[-3] in names:
            return split, parts[-2]
    return None


def folder_entries(root: Path):
    """Yield (split, class, name, bytes reader) for the image files of an ImageFolder tree."""
    for file in sorted(root.rglob("*")):
        if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
            found = split_and_class(file.relative_to(root).parts)
            if found:
                yield *found, str(file), file.read_bytes


def tar_entries(path: Path):
    """Yield (split, class, name, bytes reader) streaming through a tar archive once."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES:
                    found = split_and_class(Path(member.name).parts)
                    if found:
                        blob = tar.extractfile(member).read()
                        yield *found, member.name, (lambda b=blob: b)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from None


def decode_entries(source: Path, entries, img_size: int):
    """Decode ImageFolder entries; unreadable images are skipped, warned about and counted."""
    raw = {"train": [], "test": []}
    skipped = []
    bar = tqdm(entries, desc=f"decoding {source.name}", unit="img", mininterval=2, leave=False, disable=None)
    for split, cls, name, read in bar:
        image = cv2.imdecode(np.frombuffer(read(), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            skipped.append(name)
            continue
        raw[split].append((cls, to_rgb_size(image, img_size)))
    if skipped:
        print(f"warning: skipped {len(skipped)} unreadable image(s) in {source} (first: {skipped[0]})",
              file=sys.stderr)
    if not raw["train"] and not raw["test"] and not skipped:
        raise DataError(f"data path {source} has no images under train/<class>/ and test/<class>/ folders; "
                        "pass an ImageFolder tree (train/<class>/*.jpg, test/<class>/*.jpg) or a .tar.gz of one")
    for split in raw:
        if not raw[split]:
            raise DataError(f"data path {source} has no readable images under {split}/<class>/; "
                            f"an ImageFolder tree needs both train/ and test/ class folders")
    classes = sorted({cls for items in raw.values() for cls, _ in items})
    index = {cls: i for i, cls in enumerate(classes)}
    splits = {split: (np.stack([img for _, img in items]), np.array([index[c] for c, _ in items], np.int64))
              for split, items in raw.items()}
    return splits, classes, len(skipped)


def to_rgb_size(image_bgr: np.ndarray, size: int) -> np.ndarray:
    """BGR image -> size x size RGB (area filter when shrinking, linear when enlarging)."""
    if image_bgr.shape[:2] != (size, size):
        shrink = min(image_bgr.shape[:2]) > size
        image_bgr = cv2.resize(image_bgr, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image_bgr[:, :, ::-1])


def decode_cifar10_binary(path: Path, img_size: int):
    """The official CIFAR-10 binary release: records of 1 label byte + 3x32x32 planar RGB bytes."""
    files = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
    blobs, classes = {}, None
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = Path(member.name).name
            if name == "batches.meta.txt":
                classes = [c for c in tar.extractfile(member).read().decode().split("\n") if c.strip()]
            elif member.isfile():
                blobs[name] = tar.extractfile(member).read()
    splits = {}
    for split, names in files.items():
        records = np.frombuffer(b"".join(blobs[n] for n in names), np.uint8).reshape(-1, 1 + 3 * 32 * 32)
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        if img_size != 32:
            images = np.stack([to_rgb_size(img[:, :, ::-1], img_size) for img in images])
        splits[split] = (np.ascontiguousarray(images), records[:, 0].astype(np.int64))
    return splits, classes, 0


def download_cifar10() -> Path:
    """The official CIFAR-10 binary archive, downloaded once into the cache."""
    target = cache_root() / CIFAR10_URL.rsplit("/", 1)[1]
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(CIFAR10_URL, timeout=30) as response:
            blob = io.BytesIO(response.read())
    except OSError as exc:
        raise DataError(f"cannot download CIFAR-10 from {CIFAR10_URL} ({exc}); without network pass --data "
                        "with an ImageFolder directory or a .tar.gz of one, e.g. "
                        "--data ../shared/datasets/cifar10-jpg.tar.gz") from None
    tmp = target.with_suffix(".part")
    tmp.write_bytes(blob.getvalue())
    tmp.rename(target)
    return target
