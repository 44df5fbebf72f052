"""The feature cache: one frame's intermediate tensors, in buffers allocated once at start.

The buffers are the stages' own output tensors, placed once at start: the trunk tensor is
the trunk's output, f_k is subnet k's feature output. Subnet k reads the trunk tensor and
[f_1..f_{k-1}] from there: with LiteRT's CompiledModel it reads the trunk's very buffer, with
an Interpreter the cascade copies it into the subnet's input (device/compiled.py says why).
So escalating to subnet k+1 reuses everything already computed for the frame, no tensor takes
a trip through a buffer of ours or through float, and a frame allocates nothing that stays.
"""
import numpy as np


class FeatureCache:
    """[f_1..f_K], and each subnet's logits and exit statistics (the trunk tensor stays in the
    trunk's output).

    Tensors come in the type their interpreter gives (float32, or int8 in an int8 bundle);
    exit statistics are always float32 [[entropy, top-1 probability, top-1 class]].
    """

    def __init__(self, features: list, logits: list, exit_stats: list):
        self.features = features  # features[k - 1]: f_k, (1, D_k)
        self.offsets = np.concatenate([[0], np.cumsum([f.shape[1] for f in features])]).astype(int)
        self.logits = logits
        self.exit_stats = exit_stats
        self.filled = 0  # subnets whose f_k belongs to the current frame

    def new_frame(self) -> None:
        """The trunk tensor is about to change: no cached feature is valid any more."""
        self.filled = 0

    def prefix_width(self, k: int) -> int:
        """Width of [f_1..f_{k-1}], the cached input of subnet k."""
        return int(self.offsets[k - 1])
