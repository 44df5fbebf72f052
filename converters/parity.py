"""Parity of the exported files with PyTorch on real test images; the build stops when it fails.

Every exit is run through the board's own engine (device.engine.Cascade, in ai-edge-litert: the
stages that exit needs, on the outputs earlier stages left, as a frame escalating through the
ladder runs them) and compared with PyTorch's logits of that exit: max abs logit difference,
top-1 agreement, and agreement of the cascade's exit decision at the calibrated router setting,
taken as the board takes it: from the entropy each answering file computes itself (its exit
statistics output). The figures are keyed by the answering file's name.
"""
from dataclasses import dataclass

import numpy as np
import torch

from device.engine import Cascade
from device.engine.outputs import exit_outputs
from device.errors import UserError
from device.policy.exits import exit_subnets, softmax_entropy

MIN_PARITY_IMAGES = 1000


class ParityError(UserError, RuntimeError):
    """An exported file disagrees with PyTorch beyond the thresholds; the message names it."""


@dataclass(frozen=True)
class Thresholds:
    fp32_top1_agreement: float = 0.999       # fraction of images with the same top-1
    fp32_logit_diff_of_range: float = 1e-3   # max abs logit diff / PyTorch logit range
    int8_top1_drop: float = 0.01             # int8 top-1 may be at most 1.0 pp under fp32's


@torch.no_grad()
def torch_reference(net, images: np.ndarray, batch: int = 250) -> np.ndarray:
    """PyTorch's logits of every exit on the parity images: (K, N, classes)."""
    net.eval()
    chunks = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).float().permute(0, 3, 1, 2)
        chunks.append(np.stack([lg.numpy() for lg in net(x)]))
    return np.concatenate(chunks, axis=1)


def cascade_exits(logits: np.ndarray, thresholds) -> np.ndarray:
    """0-based subnet at which the cascade answers each image, from (K, N, classes) logits."""
    return exit_subnets(softmax_entropy(logits), thresholds)


def compare(ref_logits: np.ndarray, got_logits: np.ndarray, labels: np.ndarray) -> dict:
    """Figures of one file from its logits (N, classes) and PyTorch's."""
    return {
        "max_abs_logit_diff": float(np.abs(got_logits - ref_logits).max()),
        "logit_range": float(ref_logits.max() - ref_logits.min()),
        "top1_agreement": float((got_logits.argmax(-1) == ref_logits.argmax(-1)).mean()),
        "top1": float((got_logits.argmax(-1) == labels).mean()),
    }


def measure(cascade: Cascade, reference: np.ndarray, images: np.ndarray, labels: np.ndarray, exit_thresholds,
            min_images: int = MIN_PARITY_IMAGES) -> tuple:
    """(per answering file {file name: figures}, whole-cascade figures) of one precision, against
    PyTorch's `reference` logits (K, N, classes) of the same images."""
    if len(images) < min_images:
        raise ValueError(f"parity needs >= {min_images} images, got {len(images)}")
    logits_tfl, stats_tfl = exit_outputs(cascade, images)
    ref_exit = cascade_exits(reference, exit_thresholds)
    got_exit = exit_subnets(stats_tfl[..., 0], exit_thresholds)
    ref_entropy = softmax_entropy(reference)
    files = {}
    for k in range(cascade.num_subnets):
        figures = compare(reference[k], logits_tfl[k], labels)
        figures["max_abs_entropy_diff"] = float(np.abs(stats_tfl[k, :, 0] - ref_entropy[k]).max())
        # does the cascade decide "answer at exit k+1" for the same images as PyTorch?
        figures["exit_agreement"] = float(((got_exit == k) == (ref_exit == k)).mean())
        files[cascade.answer_file(k + 1)] = figures
    answer_tfl = logits_tfl[got_exit, np.arange(len(labels))].argmax(-1)
    whole = {
        "exit_agreement": float((got_exit == ref_exit).mean()),
        "top1": float((answer_tfl == labels).mean()),
        "images": int(len(labels)),
    }
    return files, whole


def check_fp32(parity: dict, limits: Thresholds = Thresholds()) -> None:
    """Raise ParityError naming the first fp32 file below the thresholds."""
    for name, f in parity.items():
        if f["top1_agreement"] < limits.fp32_top1_agreement:
            raise ParityError(f"{name}: fp32 top-1 agreement with PyTorch {f['top1_agreement']:.2%} "
                              f"< {limits.fp32_top1_agreement:.1%}")
        allowed = limits.fp32_logit_diff_of_range * f["logit_range"]
        if f["max_abs_logit_diff"] > allowed:
            raise ParityError(f"{name}: fp32 max abs logit diff {f['max_abs_logit_diff']:.3g} > {allowed:.3g} "
                              f"({limits.fp32_logit_diff_of_range:g} of the logit range {f['logit_range']:.3g})")


def check_int8(parity: dict, fp32_parity: dict, limits: Thresholds = Thresholds()) -> None:
    """Raise ParityError naming the first int8 file whose top-1 falls more than the allowed drop under fp32's.

    Files are matched by position (exit 1..K) since int8 names differ from fp32's.
    """
    for (name, f), fp32 in zip(parity.items(), fp32_parity.values()):
        if f["top1"] < fp32["top1"] - limits.int8_top1_drop:
            raise ParityError(f"{name}: int8 top-1 {f['top1']:.2%} is more than "
                              f"{limits.int8_top1_drop * 100:.1f} pp under fp32's {fp32['top1']:.2%}")
