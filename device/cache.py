"""The feature cache: buffers for one frame's intermediate tensors, allocated once at start.

The trunk writes its tensor here; subnet k writes f_k into its slice of the concatenated
feature buffer and reads [f_1..f_{k-1}] from the slice before it. Escalating to subnet k+1
therefore reuses everything already computed for the frame, and a frame allocates nothing
that stays.
"""
import numpy as np


class FeatureCache:
    """Trunk tensor + concatenated features [f_1..f_K] + per-subnet logits.

    The trunk tensor is the trunk interpreter's own output buffer, in the type the trunk gives
    (float32, or int8 in an int8 bundle): subnets read it from there, with no copy into a buffer
    of ours and no float round trip. Features and logits are float32.
    """

    def __init__(self, trunk: np.ndarray, feature_dims, num_classes: int, logits: list | None = None):
        """`logits`: one existing (1, num_classes) float32 buffer, or None to allocate one, per subnet
        (a float subnet's own output, read in place)."""
        self.trunk = trunk
        self.offsets = np.concatenate([[0], np.cumsum(feature_dims)]).astype(int)  # offsets[k] = width of [f_1..f_k]
        self.features = np.zeros((1, int(self.offsets[-1])), dtype=np.float32)
        given = logits or [None] * len(feature_dims)
        self.logits = [np.zeros((1, num_classes), dtype=np.float32) if buffer is None else buffer
                       for buffer in given]  # logits[k - 1]: subnet k's
        self.filled = 0  # subnets whose f_k belongs to the current frame

    def new_frame(self) -> None:
        """The trunk tensor is about to change: no cached feature is valid any more."""
        self.filled = 0

    def prefix(self, k: int) -> np.ndarray:
        """[f_1..f_{k-1}], the cached input of subnet k (a contiguous view, no copy)."""
        return self.features[:, : self.offsets[k - 1]]

    def slot(self, k: int) -> np.ndarray:
        """Where subnet k's f_k goes (a view)."""
        return self.features[:, self.offsets[k - 1]: self.offsets[k]]
