"""Data folders that cannot be trained on, shared by the library and CLI error-path tests."""
from pathlib import Path

import cv2
import numpy as np

# case -> words the one-line error must hold besides the path
CASES = {
    "missing": "does not exist",
    "empty": "holds no images",
    "no_class_folders": "in class folders",
    "only_corrupt": "holds no readable images",
    "single_class": "a single class (cat)",
    "too_few_in_a_class": "class 'snow leopard' has 2 image(s)",
    "mixed_layout": "mixes split folders",
}


def _images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((8, 8, 3), 10 * i, np.uint8))


def make_unusable_data(tmp_path: Path, case: str) -> Path:
    """A --data path of the given kind (see CASES)."""
    path = tmp_path / "data"
    if case != "missing":
        path.mkdir()
    if case == "no_class_folders":
        cv2.imwrite(str(path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    if case == "only_corrupt":
        for split in ("train", "test"):
            (path / split / "cat").mkdir(parents=True)
            (path / split / "cat" / "x.jpg").write_bytes(b"broken")
    if case == "single_class":
        _images(path / "cat", 6)
    if case == "too_few_in_a_class":
        _images(path / "cat", 6)
        _images(path / "snow leopard", 2)
    if case == "mixed_layout":
        for split in ("train", "test"):
            _images(path / split / "cat", 2)
        _images(path / "dog", 2)
    return path
