"""The feature cache: one frame's intermediate tensors, in buffers allocated once at start.

The buffers are the stages' own tensors, placed once at start: the trunk tensor is the
trunk's output, and the features [f_1..f_k] are subnet k's first output, which subnet k+1
takes as its cached-features input as it stands. With LiteRT's CompiledModel a subnet reads
those outputs' very buffers; with an Interpreter the cascade copies each of them once into
the subnet that reads it (device/engine/compiled.py says why). So escalating to subnet k+1 reuses
everything already computed for the frame, no tensor takes a trip through a buffer of ours or
through float, and a frame allocates nothing that stays.
"""


class FeatureCache:
    """Where the features end and each subnet's logits and exit statistics are (the trunk tensor
    and the features stay in the stages' buffers).

    Tensors come in the type their interpreter gives (float32, or int8 in an int8 bundle);
    exit statistics are always float32 [entropy, top-1 probability, top-1 class], as a
    memoryview of the (1, 3) output: indexing it gives a Python float, with no numpy call
    per frame.
    """

    def __init__(self, widths: list, logits: list, exit_stats: list):
        self.offsets = [0, *widths]  # offsets[k]: width of [f_1..f_k]
        self.logits = logits
        self.exit_stats = exit_stats
        self.filled = 0  # subnets whose features belong to the current frame

    def prefix_width(self, k: int) -> int:
        """Width of [f_1..f_{k-1}], the cached input of subnet k."""
        return self.offsets[k - 1]
