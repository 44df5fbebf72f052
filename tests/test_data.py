"""Data loading: ImageFolder dir and .tar.gz, corrupt images, the calibration split, and bad sources."""
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
    assert "skipped 1 unreadable image" in capsys.readouterr().err
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


@pytest.mark.parametrize("case", CASES)
def test_unusable_sources_raise_naming_the_path(tmp_path, case):
    path = make_unusable_data(tmp_path, case)
    with pytest.raises(DataError, match=str(path)):
        load_cifar_like(path, 32, None, 1, 0)


def test_shared_cifar10(cifar_tar, monkeypatch):
    monkeypatch.delenv("DYNEDGE_CACHE")  # decode the shared archive once per machine, not per test run
    splits = load_cifar_like(cifar_tar, img_size=32, limit_train=300, calib_size=100, seed=0, limit_test=200)
    assert splits.name == "cifar10" and len(splits.classes) == 10
    assert (len(splits.train), len(splits.calib), len(splits.test)) == (300, 100, 200)
    assert splits.train.images.shape[1:] == (32, 32, 3) and splits.skipped == 0
