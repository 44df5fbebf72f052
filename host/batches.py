"""Image batches on their way into the network: the torch device, the input layout, resizing."""
from contextlib import contextmanager

import torch
import torch.nn.functional as F


def pick_device(name: str = "auto") -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def to_input(images_nhwc: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC RGB -> float NCHW on 0..255 (stored channels-last), as the network expects."""
    x = images_nhwc.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x.contiguous(memory_format=torch.channels_last)


def downscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """A batch resized to size x size with antialiasing, for the low-resolution phase."""
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous(memory_format=torch.channels_last)


@contextmanager
def channels_last(net: torch.nn.Module):
    """Run `net` with NHWC weights: training steps run faster on a 2-core CPU
    (bench/train_step.py); checkpoints and the exporter get the default layout back."""
    net.to(memory_format=torch.channels_last)
    try:
        yield net
    finally:
        net.to(memory_format=torch.contiguous_format)
