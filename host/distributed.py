"""Training in several processes on PyTorch's own engine: torchrun starts them, DDP averages gradients.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK in every process it starts. Without them (or
with WORLD_SIZE 1) a run is the one process it always was and torch.distributed is never
initialised. Backends: gloo on CPU, NCCL on CUDA, one GPU per process (its LOCAL_RANK).
docs/distributed-training.md has the launch commands and the reasons for the choices here.
"""
import datetime
import os
import socket
import time
import zlib
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.distributed as dist

from device.errors import UserError
from host.batches import pick_device

DEFAULT_TIMEOUT_S = 300.0


class DistributedError(UserError, RuntimeError):
    """A launch that cannot work: a rendezvous out of reach, a device this node lacks, ranks that disagree."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; World() is a single-process run."""
    size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: str = "cpu"  # set by start() under torchrun

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> World:
    """The World torchrun describes in the environment (World() when it did not start this process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(size, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device_name: str, timeout_s: float) -> World:
    """Check --device, then (under torchrun) join the process group: returns the World with its device.

    `timeout_s` bounds the wait for the other processes to join and every collective afterwards.
    """
    device = pick_device(device_name)
    if not world.distributed:
        return world
    if device.type == "cuda":
        if device.index is not None:
            raise DistributedError(f"--device {device_name}: under torchrun each process takes the GPU of its "
                                   "LOCAL_RANK; pass --device cuda (or auto)")
        if world.local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK {world.local_rank} but this node has {torch.cuda.device_count()} "
                                   "GPU(s); pass --nproc-per-node at most that")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise DistributedError(f"--device {device_name}: under torchrun train on cpu (gloo) or cuda (NCCL)")
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not host or not port:
        raise DistributedError("WORLD_SIZE is set but MASTER_ADDR or MASTER_PORT is not; launch with torchrun")
    if world.rank != 0:  # rank 0 hosts the store itself, unless torchrun's agent does (then it is up)
        wait_for_endpoint(world, host, int(port), timeout_s)
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    except dist.DistError as exc:
        raise DistributedError(f"rank {world.rank} of {world.size}: the processes did not all join at {host}:{port} "
                               f"within --dist-timeout {timeout_s:g} s ({first_line(exc)}); start every rank "
                               "(on each node the same torchrun command: --nnodes, --node-rank, "
                               "--rdzv-endpoint) or raise --dist-timeout") from None
    return replace(world, device=str(device))


def wait_for_endpoint(world: World, host: str, port: int, timeout_s: float) -> None:
    """Wait up to timeout_s for the rendezvous store (MASTER_ADDR:MASTER_PORT) to accept a connection.

    torch's own store client retries past its timeout and logs C++ stack frames on the way;
    this check fails on time, with one line.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise DistributedError(f"rank {world.rank} of {world.size} cannot reach the rendezvous at "
                                       f"{host}:{port} within --dist-timeout {timeout_s:g} s; start rank 0 (node "
                                       "rank 0), check the address and port (--rdzv-endpoint) and the firewall, "
                                       "or raise --dist-timeout") from None
            time.sleep(0.5)


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def finish(world: World) -> None:
    """Every rank waits here until all have finished training (rank 0's checkpoint is written), then
    leaves the process group: rank 0 goes on alone, so no collective waits on its evaluation."""
    if world.distributed:
        dist.barrier()
        dist.destroy_process_group()


def shard(order: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's part of an epoch's image order: every world.size-th image from world.rank on.

    The last len(order) % world.size images of the order are left out, so that every rank holds
    as many images and takes as many steps (DDP needs that); disjoint across ranks, and the
    order is drawn anew each epoch, so a different remainder is left out each time.
    """
    usable = len(order) - len(order) % world.size
    return order[world.rank:usable:world.size]


def agree(world: World, value, what: str, fix: str) -> None:
    """Refuse to go on, on every rank alike, unless all ranks hold the same `value` (picklable, small)."""
    if not world.distributed:
        return
    values = [None] * world.size
    dist.all_gather_object(values, value)
    other = next((r for r, v in enumerate(values) if v != values[0]), None)
    if other is not None:
        raise DistributedError(f"the ranks disagree on {what}: rank {other} has {values[other]}, "
                               f"rank 0 has {values[0]}; {fix}")


def fingerprint(images: np.ndarray, labels: np.ndarray) -> tuple:
    """(count, CRC-32 of the images, CRC-32 of the labels): equal on every rank that decoded the same data."""
    return len(labels), zlib.crc32(np.ascontiguousarray(images).data), zlib.crc32(np.ascontiguousarray(labels).data)


def total(world: World, values: np.ndarray) -> np.ndarray:
    """`values` summed over the ranks (float64), e.g. each epoch's loss sums and image counts."""
    tensor = torch.from_numpy(np.asarray(values, np.float64)).to(world.device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def describe(world: World, batch_size: int, lr: float, lr_scaling: str) -> str:
    """One line for the log: processes, backend, the batch per process and per step, the learning rate."""
    return (f"distributed: {world.size} processes ({dist.get_backend()}), batch {batch_size} per process, "
            f"{batch_size * world.size} per step; lr {lr:g} (--lr-scaling {lr_scaling})")
