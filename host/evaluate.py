"""Per-subnet logits and top-1 on a split, in one pass of the network per batch."""
import numpy as np
import torch
from tqdm import tqdm

from host.batches import channels_last, pick_device, to_input


@torch.no_grad()
def collect_logits(net, split, batch_size: int = 256, device: str = "auto", desc: str = "evaluating") -> np.ndarray:
    """(K, N, classes) float32 logits of every subnet on `split` (eval mode, no augmentation)."""
    device = pick_device(device) if isinstance(device, str) else device
    net.to(device).eval()
    images = torch.from_numpy(split.images)
    chunks = []
    with channels_last(net):
        for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False, disable=None):
            x = to_input(images[start:start + batch_size], device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                logits = net(x)
            chunks.append(torch.stack(logits).float().cpu().numpy())
    return np.concatenate(chunks, axis=1)


def top1(logits: np.ndarray, labels: np.ndarray) -> list:
    """Top-1 accuracy (0..1) of each subnet from (K, N, classes) logits."""
    return [float((subnet.argmax(axis=1) == labels).mean()) for subnet in logits]
