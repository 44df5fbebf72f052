"""Image classification data as uint8 arrays: an image folder, a .tar.gz of one, or CIFAR-10's download.

--data takes two layouts, as a folder or a .tar.gz (a single top folder in an archive is looked
through):
  split  train/<class>/* and test/<class>/* (or val/): the source's own split is kept;
  flat   <class>/*: no split given, so a seeded, stratified fifth of every class is held out
         as the test split.
Either way a seeded, stratified calibration split is carved out of the training images (never
the test images), so calibration sees unseen data without touching the figures reported on
test. Hidden files, non-image files and unreadable images are skipped and counted in one
warning line; every image becomes RGB (grayscale, palette, CMYK and alpha included) and is
resized to the input side, as the board's preprocessing resizes a camera frame.

Decoding tens of thousands of JPEGs every epoch on a 2-core host is slow, so a source is
decoded once and cached as .npy arrays under ~/.cache/dynedge (or $DYNEDGE_CACHE), keyed by
the source's path, size and mtime and the image size.
"""
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from device.errors import UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"  # raw bytes, no pickle
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLIT_DIRS = {"train": ("train",), "test": ("test", "val")}
FLAT_TEST_FRACTION = 0.2     # of every class, for a flat folder
MAX_CALIB_FRACTION = 0.5     # the calibration split takes at most this share of the training images
MIN_PER_CLASS = 5            # images a class needs in a flat folder: test, calibration and training each get some
CACHE_VERSION = 2
LAYOUT_HELP = ("an image folder of train/<class>/* and test/<class>/* (or val/), a folder of <class>/* "
               "to split here, or a .tar.gz of either")


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
    skipped: int = 0  # files left out while decoding: hidden, not images, unreadable
    how: str = "the source's own train/test split"

    def summary(self) -> str:
        """One line for the user: the split sizes and how the split was made."""
        return (f"data: {self.name}, {len(self.classes)} classes: train {len(self.train):,}, calibration "
                f"{len(self.calib):,}, test {len(self.test):,} images ({self.how})")

    def describe(self) -> dict:
        """What the checkpoint config and the manifest record of the data."""
        return {"name": self.name, "classes": len(self.classes), "train": len(self.train),
                "calibration": len(self.calib), "test": len(self.test), "split": self.how,
                "skipped_files": self.skipped}


def cache_root() -> Path:
    return Path(os.environ.get("DYNEDGE_CACHE", Path.home() / ".cache" / "dynedge"))


def load_cifar_like(data=None, img_size: int = 32, limit_train: int | None = None, calib_size: int = 5000,
                    seed: int = 0, limit_test: int | None = None) -> Splits:
    """Train/calib/test splits from `data` (see the module docstring; None = CIFAR-10 download).

    A flat folder first loses its stratified test fifth; then calib_size images (at most a
    half of the training images) are held out of train, stratified and seeded; limit_train /
    limit_test then keep a random subset of what is left, for smoke runs.
    """
    if data is None:
        data = download_cifar10()
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist; pass --data with {LAYOUT_HELP}")
    arrays = cached_arrays(path, img_size)
    rng = np.random.default_rng(seed)
    classes = list(arrays["classes"])
    if arrays["layout"] == "flat":
        every = Split(arrays["all_images"], arrays["all_labels"])
        test_index = stratified_pick(every.labels, FLAT_TEST_FRACTION, rng)
        rest = np.setdiff1d(np.arange(len(every)), test_index)
        train_all, test = every.subset(rest), every.subset(test_index)
        how = f"made here: a seeded, stratified {FLAT_TEST_FRACTION:.0%} of every class held out for test"
    else:
        train_all = Split(arrays["train_images"], arrays["train_labels"])
        test = Split(arrays["test_images"], arrays["test_labels"])
        how = "the source's own train/test split"
    calib_count = min(calib_size, int(len(train_all) * MAX_CALIB_FRACTION))
    if calib_count < len(classes):
        raise DataError(f"{path}: {len(train_all)} training images leave too few for a calibration split of "
                        f"every class ({len(classes)} classes); add images")
    calib_index = stratified_pick(train_all.labels, calib_count / len(train_all), rng)
    train = train_all.subset(np.setdiff1d(np.arange(len(train_all)), calib_index))
    calib = train_all.subset(calib_index)
    if limit_train is not None and limit_train < len(train):
        train = train.subset(np.sort(rng.permutation(len(train))[:limit_train]))
    if limit_test is not None and limit_test < len(test):
        test = test.subset(np.sort(rng.permutation(len(test))[:limit_test]))
    return Splits(train, calib, test, classes, arrays["name"], int(arrays["skipped"]), how)


def stratified_pick(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded `fraction` of every class (at least one image of each)."""
    picked = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = max(1, round(fraction * len(members)))
        picked.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(picked))


def dataset_name(path: Path) -> str:
    """'cifar10' for cifar10-jpg.tar.gz or a cifar10/ folder: the name up to the first '-' or '.',
    with anything but letters, digits and '_' made '_' ('my photos' -> 'my_photos'): it names the
    bundle folder a user copies with scp."""
    return re.sub(r"\W", "_", path.name.split(".")[0].split("-")[0]) or "dataset"


def cached_arrays(path: Path, img_size: int) -> dict:
    """Decoded arrays for `path` at `img_size`, from the cache or decoded now and cached."""
    stat = path.stat()
    key_text = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{img_size}"
    folder = cache_root() / "arrays" / hashlib.sha1(key_text.encode()).hexdigest()[:16]
    if (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy") for name in meta["arrays"]}
        return {**arrays, **meta["info"]}
    splits, classes, skipped, layout = decode_source(path, img_size)
    arrays = {}
    for split, (images, labels) in splits.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    info = {"classes": classes, "name": "cifar10" if path.name == CIFAR10_URL.rsplit("/", 1)[1] else dataset_name(path),
            "skipped": skipped, "layout": layout}
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
    """({split: (images, labels)}, classes, skipped, layout) from any supported source; split is
    'train' and 'test' for the split layout, 'all' for a flat one."""
    if path.is_file() and path.name == CIFAR10_URL.rsplit("/", 1)[1]:
        return (*decode_cifar10_binary(path, img_size), "split")
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return decode_entries(path, tar_entries(path), img_size)
    if path.is_dir():
        return decode_entries(path, folder_entries(path), img_size)
    raise DataError(f"data path {path} is neither a folder nor a .tar.gz; pass --data with {LAYOUT_HELP}")


def folder_entries(root: Path):
    """Yield (relative path parts, name, bytes reader) for every file under root."""
    for file in sorted(root.rglob("*")):
        if file.is_file():
            yield file.relative_to(root).parts, str(file), file.read_bytes


def tar_entries(path: Path):
    """Yield (path parts, name, bytes reader) for every file of a tar archive, streaming through it once."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    parts = Path(member.name).parts
                    wanted = Path(member.name).suffix.lower() in IMAGE_SUFFIXES and not hidden(parts)
                    blob = tar.extractfile(member).read() if wanted else b""
                    yield parts, member.name, (lambda b=blob: b)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from None


def hidden(parts: tuple) -> bool:
    return any(part.startswith(".") for part in parts)


def strip_common_top(entries: list) -> list:
    """Entries seen through a single top folder that every file sits in (an archive's usual
    'name/...'), as long as it is neither a split folder nor a class folder of a flat layout."""
    while entries and all(len(parts) >= 3 for parts, *_ in entries):
        tops = {parts[0] for parts, *_ in entries}
        if len(tops) != 1 or tops & {n for names in SPLIT_DIRS.values() for n in names}:
            break
        entries = [(parts[1:], *rest) for parts, *rest in entries]
    return entries


def place(parts: tuple) -> tuple[str, str] | None:
    """(split, class) of an image at `parts`: ('train'|'test', class) under a split folder,
    ('all', class) in a flat class folder, None for an image with no class folder."""
    for split, names in SPLIT_DIRS.items():
        if parts[0] in names:
            return (split, parts[1]) if len(parts) >= 3 else None
    return ("all", parts[0]) if len(parts) >= 2 else None


def decode_entries(source: Path, entries, img_size: int):
    """Decode an image folder's entries (see the module docstring for the layouts and the files
    left out); DataError names what is wrong with the source and how to fix it."""
    entries = strip_common_top(list(entries))
    raw = {"train": [], "test": [], "all": []}
    left_out = []
    for parts, name, read in tqdm(entries, desc=f"decoding {source.name}", unit="file", mininterval=2,
                                  leave=False, disable=None):
        spot = place(parts) if Path(name).suffix.lower() in IMAGE_SUFFIXES and not hidden(parts) else None
        image = cv2.imdecode(np.frombuffer(read(), np.uint8), cv2.IMREAD_COLOR) if spot else None
        if image is None:
            left_out.append(name)
            continue
        raw[spot[0]].append((spot[1], to_rgb_size(image, img_size)))
    split_classes = sorted({cls for split in ("train", "test") for cls, _ in raw[split]})
    flat_classes = sorted({cls for cls, _ in raw["all"]})
    if split_classes and flat_classes:
        raise DataError(f"data path {source} mixes split folders (train/, test/) with class folders "
                        f"({', '.join(flat_classes[:3])}); use one layout: {LAYOUT_HELP}")
    if not split_classes and not flat_classes:
        what = f"readable images ({len(left_out)} file(s) left out)" if left_out else "images"
        raise DataError(f"data path {source} holds no {what} in class folders; pass --data with {LAYOUT_HELP}")
    if split_classes:
        for split in ("train", "test"):
            if not raw[split]:
                raise DataError(f"data path {source} has no readable images under {split}/<class>/; "
                                f"the split layout needs both train/ and test/ (or val/) class folders")
        items, layout = {"train": raw["train"], "test": raw["test"]}, "split"
    else:
        counts = Counter(cls for cls, _ in raw["all"])
        if len(counts) < 2:
            raise DataError(f"data path {source} has a single class ({flat_classes[0]}); a classifier needs "
                            f"at least two class folders")
        small = sorted((n, cls) for cls, n in counts.items() if n < MIN_PER_CLASS)
        if small:
            raise DataError(f"data path {source}: class '{small[0][1]}' has {small[0][0]} image(s), too few to "
                            f"split into training, calibration and test; give every class at least "
                            f"{MIN_PER_CLASS}")
        items, layout = {"all": raw["all"]}, "flat"
    if left_out:
        print(f"warning: skipped {len(left_out)} file(s) of {source} that are hidden, not images, outside a class "
              f"folder or unreadable (e.g. {', '.join(Path(n).name for n in left_out[:3])})", file=sys.stderr)
    classes = sorted(split_classes or flat_classes)
    index = {cls: i for i, cls in enumerate(classes)}
    splits = {split: (np.stack([img for _, img in rows]), np.array([index[c] for c, _ in rows], np.int64))
              for split, rows in items.items()}
    return splits, classes, len(left_out), layout


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
