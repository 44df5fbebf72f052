"""Data loading: image folders (split and flat) and .tar.gz, junk files, the splits, and bad sources."""
import re
import tarfile

import cv2
import numpy as np
import pytest

from host.data import DataError, load_cifar_like
from tests.unusable_data import CASES, make_unusable_data

CLASSES = ("cat", "dog")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNEDGE_CACHE", str(tmp_path / "cache"))


def write_image_folder(root, per_class=6, size=40, corrupt=0):
    """train/<class>/ and test/<class>/ of distinct solid-colour PNGs (+ `corrupt` broken files)."""
    value = 0
    for split in ("train", "test"):
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                value += 3
                cv2.imwrite(str(folder / f"{i}.png"), np.full((size, size, 3), value, np.uint8))
    for i in range(corrupt):
        (root / "train" / CLASSES[0] / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    return root


def test_image_folder_resizes_and_skips_corrupt(tmp_path, capsys):
    root = write_image_folder(tmp_path / "pets", corrupt=1)
    splits = load_cifar_like(root, img_size=32, limit_train=None, calib_size=4, seed=0)
    assert "skipped 1 file(s)" in capsys.readouterr().err
    assert splits.skipped == 1 and splits.classes == list(CLASSES) and splits.name == "pets"
    assert splits.train.images.shape == (8, 32, 32, 3) and splits.train.images.dtype == np.uint8
    assert splits.calib.images.shape == (4, 32, 32, 3) and splits.test.images.shape == (12, 32, 32, 3)
    train_values = {int(v) for v in splits.train.images[:, 0, 0, 0]}
    calib_values = {int(v) for v in splits.calib.images[:, 0, 0, 0]}
    assert not train_values & calib_values  # calibration is held out of train
    again = load_cifar_like(root, img_size=32, limit_train=3, calib_size=4, seed=0)  # from the cache
    assert len(again.train) == 3 and np.array_equal(again.calib.images, splits.calib.images)


def test_tar_gz_matches_folder(tmp_path):
    root = write_image_folder(tmp_path / "pets")
    archive = tmp_path / "pets-png.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="pets")
    from_tar = load_cifar_like(archive, 32, None, 2, 0)
    from_dir = load_cifar_like(root, 32, None, 2, 0)
    assert from_tar.name == "pets"
    assert np.array_equal(from_tar.test.images, from_dir.test.images)
    assert np.array_equal(from_tar.train.labels, from_dir.train.labels)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_sources_raise_naming_the_path(tmp_path, case):
    path = make_unusable_data(tmp_path, case)
    with pytest.raises(DataError, match=re.escape(str(path))) as raised:
        load_cifar_like(path, 32, None, 1, 0)
    assert CASES[case] in str(raised.value)


def test_shared_cifar10(cifar_tar, monkeypatch):
    monkeypatch.delenv("DYNEDGE_CACHE")  # decode the shared archive once per machine, not per test run
    splits = load_cifar_like(cifar_tar, img_size=32, limit_train=300, calib_size=100, seed=0, limit_test=200)
    assert splits.name == "cifar10" and len(splits.classes) == 10
    assert (len(splits.train), len(splits.calib), len(splits.test)) == (300, 100, 200)
    assert splits.train.images.shape[1:] == (32, 32, 3) and splits.skipped == 0


def write_flat_folder(root, counts: dict, size=24):
    """<class>/*.png with counts[class] distinct images each, plus junk: a hidden file, a text
    file and a corrupt JPEG in the first class, and a grayscale, a palette and an RGBA PNG."""
    value = 0
    for cls, count in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(count):
            value += 1
            cv2.imwrite(str(root / cls / f"{i}.png"), np.full((size, size, 3), value % 256, np.uint8))
    first = root / next(iter(counts))
    (first / ".DS_Store").write_bytes(b"\0\1")
    (first / "notes.txt").write_text("not an image")
    (first / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_flat_folder_gets_a_seeded_stratified_split(tmp_path, capsys):
    counts = {"golden retriever": 20, "église": 10, "cat": 15}
    root = write_flat_folder(tmp_path / "photos", counts)
    splits = load_cifar_like(root, img_size=16, calib_size=6, seed=3)
    err = capsys.readouterr().err
    assert "skipped 3 file(s)" in err and ".DS_Store" in err  # junk counted, in one line, not loaded
    assert splits.summary() == ("data: photos, 3 classes: train 30, calibration 6, test 9 images "
                                "(made here: a seeded, stratified 20% of every class held out for test)")
    assert splits.classes == sorted(counts) and splits.skipped == 3
    index = {cls: i for i, cls in enumerate(splits.classes)}
    for cls, n in counts.items():  # a fifth of every class in test, the rest in train and calibration
        assert (splits.test.labels == index[cls]).sum() == round(0.2 * n)
        assert ((splits.train.labels == index[cls]).sum() + (splits.calib.labels == index[cls]).sum()
                == n - round(0.2 * n))
    assert set(np.unique(splits.calib.labels)) == set(index.values())
    seen = [set(map(int, s.images[:, 0, 0, 0])) for s in (splits.train, splits.calib, splits.test)]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    again = load_cifar_like(root, img_size=16, calib_size=6, seed=3)
    assert np.array_equal(again.test.images, splits.test.images)  # same seed, same split
    other = load_cifar_like(root, img_size=16, calib_size=6, seed=4)
    assert not np.array_equal(other.test.images, splits.test.images)
    assert splits.describe()["split"].startswith("made here")


def test_any_image_mode_becomes_rgb(tmp_path):
    """Grayscale, palette and RGBA files decode to 3-channel RGB at the input side."""
    from PIL import Image
    root = write_flat_folder(tmp_path / "modes", {"a": 6, "b": 6})
    Image.new("L", (30, 20), 200).save(root / "a" / "gray.png")
    Image.new("P", (20, 30), 3).save(root / "a" / "palette.png")
    Image.new("RGBA", (25, 25), (10, 20, 30, 0)).save(root / "b" / "alpha.png")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(root / "b" / "cmyk.jpg")
    splits = load_cifar_like(root, img_size=16, calib_size=2, seed=0)
    assert len(splits.train) + len(splits.calib) + len(splits.test) == 16
    assert splits.train.images.shape[1:] == (16, 16, 3)


@pytest.mark.parametrize("layout, needle", [
    ({"a": 6}, "a single class (a)"),
    ({"a": 6, "tiny class": 2}, "class 'tiny class' has 2 image(s)"),
])
def test_flat_folders_that_cannot_be_split_are_refused(tmp_path, layout, needle):
    root = write_flat_folder(tmp_path / "bad", layout)
    with pytest.raises(DataError, match=re.escape(needle)):
        load_cifar_like(root, 16, calib_size=2, seed=0)


def test_a_folder_mixing_split_and_class_folders_is_refused(tmp_path):
    root = write_image_folder(tmp_path / "mixed")
    write_flat_folder(root, {"extra": 6})
    with pytest.raises(DataError, match="mixes split folders"):
        load_cifar_like(root, 16, calib_size=2, seed=0)
