"""Data folders that cannot be trained on, shared by the library and CLI error-path tests."""
from pathlib import Path

import cv2
import numpy as np

CASES = ("missing", "empty", "no_class_folders", "only_corrupt")


def make_unusable_data(tmp_path: Path, case: str) -> Path:
    """A --data path of the given kind: absent, an empty folder, images without class folders,
    or class folders whose only image is corrupt."""
    path = tmp_path / "data"
    if case != "missing":
        path.mkdir()
    if case == "no_class_folders":
        cv2.imwrite(str(path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    if case == "only_corrupt":
        for split in ("train", "test"):
            (path / split / "cat").mkdir(parents=True)
            (path / split / "cat" / "x.jpg").write_bytes(b"broken")
    return path
