"""--show: the frame with the answer drawn on it, only where a display and a GUI-enabled OpenCV exist."""
from __future__ import annotations

import os
import sys

import cv2

WINDOW = "dynedge"


def display_problem() -> str | None:
    """Why no window can be shown here (a sentence), or None when one can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return "this OpenCV build has no GUI support (opencv-python-headless); install opencv-python"
    return None


class Overlay:
    """Draws label, score, exit subnet and latency on each frame and shows it."""

    def __init__(self, labels, budget_s: float):
        self.labels = labels
        self.budget_s = budget_s

    def __call__(self, frame, result, latency_s: float) -> None:
        over = latency_s > self.budget_s
        text = (f"{self.labels[result.label]} {result.score:.2f} | subnet {result.exit_subnet} | "
                f"{latency_s * 1e3:.1f}/{self.budget_s * 1e3:.0f} ms")
        cv2.putText(frame, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (0, 0, 255) if over else (0, 255, 0), 2, cv2.LINE_AA)
        cv2.imshow(WINDOW, frame)
        cv2.waitKey(1)

    def close(self) -> None:
        cv2.destroyAllWindows()
