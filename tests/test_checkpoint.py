"""A checkpoint write that dies half way leaves the previous checkpoint loadable and unchanged."""
import pytest
import torch

from host import checkpoint
from host.network import DynamicNet, NetConfig


def small_net(seed: int) -> DynamicNet:
    torch.manual_seed(seed)
    return DynamicNet(NetConfig(arch="resnet", widths=[0.125, 0.125]))


def test_crash_while_saving_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    first = small_net(0)
    checkpoint.save(tmp_path, first, {"note": "first"})

    def dies_half_way(tensors, path):
        path.write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path, small_net(1), {"note": "second"})
    monkeypatch.undo()

    loaded, config = checkpoint.load(tmp_path, expected_arch="resnet")
    assert config["note"] == "first"
    for name, value in first.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
