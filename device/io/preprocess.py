"""Input preprocessing that host and board must agree on.

Normalization is folded into trunk.tflite, so the board only resizes a frame and
turns OpenCV's BGR into RGB; the host trains on the same RGB 0..255 pixels and
normalizes with these constants inside the network.
"""
import cv2
import numpy as np

# CIFAR-10 channel statistics on the 0..255 scale (RGB order).
MEAN_RGB = (125.307, 122.950, 113.865)
STD_RGB = (62.993, 62.089, 66.705)


def frame_to_input(frame_bgr: np.ndarray, size: int, out: np.ndarray) -> np.ndarray:
    """Resize a BGR uint8 frame to `size` x `size` RGB float32 into `out` (shape (1, size, size, 3)).

    `out` is preallocated by the caller so a frame allocates nothing that stays.
    """
    if frame_bgr.shape[0] != size or frame_bgr.shape[1] != size:
        frame_bgr = cv2.resize(frame_bgr, (size, size), interpolation=cv2.INTER_AREA)
    out[0] = frame_bgr[:, :, ::-1]
    return out
