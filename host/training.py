"""Training any method's network: in-place distillation, SGD + warm-up cosine, one loop for all.

Every step runs one forward pass through the method's train_logits (host/methods/): for
concat all K subnets' logits (trunk once, each branch once), for slimmable the sandwich of
widths. The last (largest) learns from the labels; with distillation each smaller one learns
from the largest's detached soft predictions. With frozen updating the concat network itself
detaches what subnet k reads from others (DynamicNet.forward), so the summed loss trains each
branch by its own subnet and the trunk by one owner. After the last step the method's
after_training runs (e.g. BatchNorm statistics re-estimated per width) and the checkpoint is
written again.

host/train.py runs it from the command line (host/cli.py has the flags); under torchrun it
trains in DistributedDataParallel, one shard of each epoch per process (host/distributed.py).
"""
import math
import random
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from host import checkpoint, distributed, methods
from host.batches import channels_last, downscale, pick_device, to_input
from host.distributed import DistributedError, World


@dataclass
class TrainConfig:
    epochs: float = 1.0  # a fraction trains the last epoch on its first part only
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0  # linear warm-up length, then cosine decay to zero
    label_smoothing: float = 0.0
    crop_pad: int = 4  # pad-and-crop shift in pixels; 0 leaves flips only
    # Random resized crops (photos): each image a crop of crop_scale..1 of its area, resized to the
    # input side, flipped half the time; 0 keeps pad-and-crop.
    crop_scale: float = 0.0
    # Progressive resizing: the first low_res_epochs train on images downscaled to low_res_size
    # pixels (0: off); a pass at 24 px costs 0.62 of one at 32 px (bench/results/quick_preset_probes.md).
    low_res_size: int = 0
    low_res_epochs: float = 0.0
    grad_clip: float | None = 5.0  # max global gradient norm: K losses summed on a shared head spike early
    distill: bool = True
    distill_temperature: float = 1.0
    # Weight of the label loss mixed into each smaller subnet's loss. Pure KL (0) diverged in CPU trials:
    # a student shares the head columns (and features) the teacher reads, so it can only shrink the KL by
    # inflating logits it shares with the teacher; the label term anchors their scale.
    distill_alpha: float = 0.5
    frozen_update: bool = False  # off by measurement: bench/results/train_ablation_cpu.md
    trunk_owner: int | None = None  # subnet whose loss trains the trunk under frozen updating; None = largest
    seed: int = 0
    amp: bool = True  # only takes effect on CUDA
    device: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random pad-and-crop (pad 0: none) plus horizontal flip on a uint8 NHWC batch, vectorized."""
    n, h, w, _ = images.shape
    padded = F.pad(images, (0, 0, pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, :, None]
    cols = (dx + torch.arange(w))[:, None, :]
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    return padded[torch.arange(n)[:, None, None], rows, cols]


def random_resized_crop(x: torch.Tensor, size: int, generator: torch.Generator, min_scale: float,
                        ratio: tuple = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Per image of a float NCHW batch: a crop of min_scale..1 of its area at an aspect ratio in
    `ratio`, anywhere in the image, flipped half the time, resized to size x size. One affine
    grid and one bilinear grid_sample for the whole batch, with torch only."""
    n = x.shape[0]

    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=generator)
    area, aspect = uniform(min_scale, 1.0), torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
    width, height = torch.sqrt(area * aspect).clamp(max=1.0), torch.sqrt(area / aspect).clamp(max=1.0)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = width * flip, height
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-1.0, 1.0) * (1 - width), uniform(-1.0, 1.0) * (1 - height)
    grid = F.affine_grid(theta.to(x.device), [n, x.shape[1], size, size], align_corners=False)
    out = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened softmaxes, scaled by T^2; the teacher is detached."""
    t = temperature
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    student = F.log_softmax(student_logits.float() / t, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * (t * t)


def subnet_losses(logits: list, labels: torch.Tensor, cfg: TrainConfig) -> list:
    """One loss per subnet: labels for the largest; distillation (optionally mixed with labels) for the rest."""
    teacher = logits[-1]
    losses = []
    for k, out in enumerate(logits, start=1):
        label_loss = F.cross_entropy(out.float(), labels, label_smoothing=cfg.label_smoothing)
        if cfg.distill and k < len(logits):
            kd = distillation_loss(out, teacher, cfg.distill_temperature)
            losses.append(cfg.distill_alpha * label_loss + (1 - cfg.distill_alpha) * kd)
        else:
            losses.append(label_loss)
    return losses


def make_optimizer(net: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum; weight decay on weights only (not on BatchNorm or biases)."""
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to base_lr, then cosine decay to zero at total_steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(net, splits, cfg: TrainConfig, checkpoint_dir=None, resume: bool = False, meta: dict | None = None,
          world: World = World()) -> list:
    """Train `net` on splits.train; returns per-epoch history (per-subnet loss and accuracy, seconds).

    With checkpoint_dir, a checkpoint (weights, optimizer state, history) is written after
    every epoch; with resume, training continues from the one found there. Under torchrun
    (`world` from host.distributed.start) `net` trains wrapped in DistributedDataParallel on
    this rank's shard of every epoch, the history counts every rank's images, and rank 0
    alone writes the checkpoint and prints.
    """
    seed_everything(cfg.seed)
    device = torch.device(world.device) if world.distributed else pick_device(cfg.device)
    net.to(device)
    optimizer = make_optimizer(net, cfg)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    images = torch.from_numpy(splits.train.images)
    labels = torch.from_numpy(splits.train.labels)
    shard_size = len(labels) // world.size
    if world.distributed and shard_size < cfg.batch_size:
        raise DistributedError(f"{len(labels)} training images give each of the {world.size} processes "
                               f"{shard_size}, fewer than one batch of {cfg.batch_size}; lower --batch-size "
                               f"to at most {shard_size} or start fewer processes")
    distributed.agree(world, distributed.fingerprint(splits.train.images, splits.train.labels),
                      "their training images (count, CRC-32 of images, of labels)",
                      "every node needs the same --data contents and the same --limit-train, --calib-size, --seed")
    steps_per_epoch = max(1, shard_size // cfg.batch_size)  # drop the last partial batch (BatchNorm)
    total_steps = max(1, round(cfg.epochs * steps_per_epoch))
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    low_res_steps = round(cfg.low_res_epochs * steps_per_epoch) if cfg.low_res_size else 0
    epochs = math.ceil(total_steps / steps_per_epoch)
    history, start_epoch = [], 0
    if resume and checkpoint_dir is not None and checkpoint.exists(checkpoint_dir):
        state = checkpoint.load_training_state(checkpoint_dir, net, optimizer)
        history, start_epoch = state.get("history", []), state["epoch"]
    distributed.agree(world, start_epoch, "the epoch to resume from (0: no checkpoint found)",
                      "--resume needs the checkpoint folder on every node (a shared file system or a copy)")
    method = methods.get(net.cfg.method)
    with channels_last(net):
        model = net
        if world.distributed:  # backward() averages gradients over the ranks; every parameter is in each
            # step's loss (frozen updating detaches tensors, not parameters): find_unused_parameters stays off
            model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        for epoch in range(start_epoch, epochs):
            net.train()
            epoch_seed = cfg.seed * 100003 + epoch  # a resumed epoch replays exactly
            generator = torch.Generator().manual_seed(epoch_seed)
            order = distributed.shard(torch.randperm(len(labels), generator=generator), world)
            if world.distributed:  # the same order on every rank, but each rank its own crops and flips
                generator = torch.Generator().manual_seed(epoch_seed * world.size + world.rank)
            sums = None  # (2, logits per step): per trained logits, summed loss and correct answers
            seen, started = 0, time.time()
            steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{epochs}", unit="step", leave=False,
                       disable=not world.is_main)
            for i in bar:
                step = epoch * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total_steps, warmup_steps, cfg.lr)
                index = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                size = cfg.low_res_size if step < low_res_steps else None
                if cfg.crop_scale:
                    x = random_resized_crop(to_input(images[index], device), size or images.shape[1], generator,
                                            cfg.crop_scale)
                else:
                    x = to_input(augment(images[index], generator, cfg.crop_pad), device)
                    if size:
                        x = downscale(x, size)
                y = labels[index].to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    logits = method.train_logits(model, x, cfg, generator)
                losses = subnet_losses(logits, y, cfg)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(sum(losses)).backward()
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                with torch.no_grad():
                    sums = np.zeros((2, len(logits))) if sums is None else sums
                    sums[0] += [loss.item() * len(y) for loss in losses]
                    sums[1] += [(out.argmax(1) == y).sum().item() for out in logits]
                seen += len(y)
                if i % 10 == 0 or i == steps - 1:
                    bar.set_postfix_str(progress_text(sums / seen))
            bar.close()
            if world.distributed:  # the epoch's figures over every rank's images
                totals = distributed.total(world, np.append(sums.ravel(), seen))
                sums, seen = totals[:-1].reshape(sums.shape), totals[-1]
            record = {"epoch": epoch + 1, "loss": (sums[0] / seen).tolist(), "accuracy": (sums[1] / seen).tolist(),
                      "seconds": time.time() - started}
            history.append(record)
            if not world.is_main:
                continue
            print(f"epoch {epoch + 1}/{epochs} {progress_text(sums / seen)} ({record['seconds']:.0f}s)",
                  file=sys.stderr)
            if checkpoint_dir is not None:
                checkpoint.save(checkpoint_dir, net, {**(meta or {}), "train": cfg.to_dict()},
                                optimizer=optimizer, training_state={"epoch": epoch + 1, "history": history})
    if world.is_main:  # also after a resume that found training done: the finishing work is idempotent
        method.after_training(net, splits.train.images, cfg)
        if checkpoint_dir is not None:
            checkpoint.save(checkpoint_dir, net, {**(meta or {}), "train": cfg.to_dict()},
                            optimizer=optimizer, training_state={"epoch": epochs, "history": history})
    return history


def progress_text(means: np.ndarray) -> str:
    """'loss a/b/c acc x/y/z' over the subnets, smallest first."""
    loss = "/".join(f"{v:.2f}" for v in means[0])
    acc = "/".join(f"{100 * v:.0f}" for v in means[1])
    return f"loss {loss} acc% {acc}"
