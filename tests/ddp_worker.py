"""One torchrun process of tests/test_distributed.py: trains host.training.train() on a tiny
budget and leaves its rank's weights and history in OUT, its checkpoint folder OUT/ckpt-rank<R>.
With `differ`, rank 1 trains on other images than rank 0 (which train() must refuse).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT DATA [differ]
"""
import json
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from host import distributed  # noqa: E402
from host.data import load_cifar_like  # noqa: E402
from host.network import DynamicNet, NetConfig  # noqa: E402
from host.training import TrainConfig, seed_everything, train  # noqa: E402


def main(out: Path, data: str, differ: bool) -> None:
    torch.set_num_threads(1)
    world = distributed.start(distributed.from_env(), "cpu", timeout_s=60)
    limit_train = 128 if differ and world.rank == 1 else 130
    splits = load_cifar_like(data, img_size=32, limit_train=limit_train, calib_size=64, seed=0, limit_test=64)
    seed_everything(world.rank)  # different initial weights on each rank: DDP must broadcast rank 0's
    net = DynamicNet(NetConfig(arch="resnet", widths=[0.125, 0.125, 0.125]))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, device="cpu", frozen_update=True, distill=True)
    history = train(net, splits, cfg, checkpoint_dir=out / f"ckpt-rank{world.rank}", world=world)
    distributed.finish(world)
    save_file({k: v.contiguous() for k, v in net.named_parameters()}, out / f"weights-rank{world.rank}.safetensors")
    (out / f"history-rank{world.rank}.json").write_text(json.dumps(history))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["differ"])
