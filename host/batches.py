"""Image batches on their way into the network: the torch device, the input layout, resizing."""
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from device.errors import UserError


class DeviceError(UserError, ValueError):
    """A --device that is no device name, or one this machine does not have."""


def pick_device(name: str = "auto") -> torch.device:
    """--device as a torch.device ('auto': cuda where torch sees a GPU, else cpu); refuses one that is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name!r} is not a device; pass auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: torch sees no CUDA GPU on this machine; pass --device cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                          f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


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
