"""Training under torchrun: 2 gloo processes on CPU, each in a subprocess on a tiny budget.

Shards, identical weights on both ranks, rank 0 alone writing, the checkpoint in a
single-process build and resume, and the launch errors (one 'error:' line per process, exit 2).
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from host import checkpoint
from host.distributed import World, shard
from tests.fixtures_bundle import TINY_ARGS

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(cmd: list, cwd=REPO, env=ENV, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(proc: subprocess.CompletedProcess) -> list:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr[-2000:]
    assert all(needle in lines[0] for needle in needles), lines[0]


def assert_every_rank_refused(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Under torchrun: each failing process printed the same one-line error and exited 2 (torchrun itself
    exits 1 with its failure report); no traceback came from the kit's code."""
    assert proc.returncode != 0
    errors = error_lines(proc)
    assert errors and len(set(errors)) == 1, proc.stderr[-3000:]
    assert all(needle in errors[0] for needle in needles), errors[0]
    assert "exitcode  : 2" in proc.stderr
    assert f"File \"{REPO / 'host'}" not in proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("n, size", [(10, 1), (10, 2), (131, 2), (100, 3), (7, 4)])
def test_shards_are_disjoint_equal_and_cover_all_but_the_remainder(n, size):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    parts = [shard(order, World(size, rank)) for rank in range(size)]
    assert {len(p) for p in parts} == {n // size}
    union = torch.cat(parts)
    assert len(set(union.tolist())) == len(union) == n - n % size  # disjoint, all but n % size images
    assert set(union.tolist()) == set(order[:n - n % size].tolist())
    if size == 1:
        assert torch.equal(parts[0], order)  # a single process keeps today's order


def test_ranks_hold_identical_weights_and_only_rank_0_writes(tmp_path, cifar_tar):
    """Each rank starts from other weights and trains on its own shard with frozen updating and
    distillation: after 2 epochs both hold the same parameters bit for bit, and the same history."""
    proc = run([*TORCHRUN, REPO / "tests" / "ddp_worker.py", tmp_path, cifar_tar])
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = (load_file(tmp_path / f"weights-rank{r}.safetensors") for r in (0, 1))
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    h0, h1 = (json.loads((tmp_path / f"history-rank{r}.json").read_text()) for r in (0, 1))
    assert [h["epoch"] for h in h0] == [1, 2] and [h["loss"] for h in h0] == [h["loss"] for h in h1]
    assert checkpoint.exists(tmp_path / "ckpt-rank0") and not (tmp_path / "ckpt-rank1").exists()
    assert proc.stderr.count("epoch 2/2 loss") == 1  # rank 0 alone prints


def test_ranks_with_other_training_images_are_refused(tmp_path, cifar_tar):
    proc = run([*TORCHRUN, REPO / "tests" / "ddp_worker.py", tmp_path, cifar_tar, "differ"])
    assert proc.returncode != 0 and "the ranks disagree on their training images" in proc.stderr
    assert "every node needs the same --data contents" in proc.stderr
    assert not list(tmp_path.glob("ckpt-rank*"))


def test_torchrun_train_then_single_process_build_and_resume(tmp_path, cifar_tar):
    """torchrun host/train.py on 131 images (65 a rank, a remainder left out); the checkpoint builds a
    bundle in one process and resumes there (world size 2 -> 1)."""
    ckpt = tmp_path / "ckpt"
    flags = [*TINY_ARGS, "--limit-train", "131", "--data", cifar_tar]
    proc = run([*TORCHRUN, REPO / "host" / "train.py", *flags, "--out", ckpt], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("calib top-1") == 1 and "distributed: 2 processes (gloo)" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing else written, by any rank
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "model.safetensors", "optimizer.safetensors"]
    config = checkpoint.read_config(ckpt)
    assert config["distributed"] == {"world_size": 2, "lr_scaling": "linear"}
    assert config["training_state"]["epoch"] == 1 and config["train"]["lr"] == pytest.approx(2 * 0.05)

    build = run([sys.executable, REPO / "host" / "build.py", *TINY_ARGS, "--data", cifar_tar, "--checkpoint", ckpt,
                 "--out", tmp_path / "dist"])
    assert build.returncode == 0, build.stderr[-3000:]
    assert (tmp_path / "dist" / "resnet-cifar10" / "model" / "manifest.json").is_file()

    resumed = run([sys.executable, REPO / "host" / "train.py", *flags, "--epochs", "2", "--resume", "--out", ckpt])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = checkpoint.read_config(ckpt)["training_state"]
    assert [h["epoch"] for h in state["history"]] == [1, 2] and "distributed" not in checkpoint.read_config(ckpt)


@pytest.mark.parametrize("script", ["train.py", "build.py"])
def test_cuda_on_a_cpu_only_node_single_process(tmp_path, script):
    if torch.cuda.is_available():
        pytest.skip("this node has a GPU")
    proc = run([sys.executable, REPO / "host" / script, *TINY_ARGS, "--device", "cuda", "--out", tmp_path / "out"])
    errors = error_lines(proc)
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--device cuda" in errors[0] and "--device cpu" in errors[0]


@pytest.mark.parametrize("flags, needles", [
    (["--device", "cuda"], ["--device cuda", "--device cpu"]),
    (["--limit-train", "40"], ["each of the 2 processes 20", "--batch-size to at most 20"]),
    (["--checkpoint", "somewhere"], ["--checkpoint", "without torchrun"]),
], ids=["cuda-on-cpu", "shard-below-one-batch", "build-from-checkpoint"])
def test_torchrun_refusals(tmp_path, cifar_tar, flags, needles):
    if flags[0] == "--device" and torch.cuda.is_available():
        pytest.skip("this node has a GPU")
    script = "build.py" if flags[0] == "--checkpoint" else "train.py"
    proc = run([*TORCHRUN, REPO / "host" / script, *TINY_ARGS, "--data", cifar_tar, *flags,
                "--out", tmp_path / "out"], timeout=120)
    assert_every_rank_refused(proc, *needles)


@pytest.mark.parametrize("rank, needle", [(0, "did not all join"), (1, "cannot reach the rendezvous")])
def test_a_rank_alone_fails_within_the_timeout(tmp_path, rank, needle):
    """A process started for a world of 2 whose peer (rank 1) or rendezvous host (rank 0) never comes."""
    env = {**ENV, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port())}
    started = time.monotonic()
    proc = run([sys.executable, REPO / "host" / "train.py", *TINY_ARGS, "--dist-timeout", "2",
                "--out", tmp_path / "out"], env=env, timeout=60)
    assert_one_line_error(proc, needle, "--dist-timeout 2 s")
    assert time.monotonic() - started < 30  # 2 s of waiting plus interpreter and torch start-up
    assert not (tmp_path / "out").exists()
