"""The dynamic network: shapes, one pass == per-subnet forward, and what frozen updating blocks."""
import pytest
import torch

from host.network import ARCHS, DynamicNet, NetConfig
from tests.torch_threads import one_thread  # noqa: F401  (autouse fixture)


def make_net(arch, widths=(0.25, 0.25, 0.25, 0.25), img_size=16):
    torch.manual_seed(0)
    return DynamicNet(NetConfig(arch=arch, img_size=img_size, widths=list(widths)))


def images(n=2, size=16):
    return torch.rand(n, 3, size, size) * 255


@pytest.mark.parametrize("arch", ARCHS)
def test_one_pass_matches_every_subnet_forward(arch):
    net = make_net(arch).eval()
    x = images()
    with torch.no_grad():
        all_logits = net(x)
        assert len(all_logits) == net.num_subnets == 4
        cached, trunk = None, net.trunk(x)
        for k in range(1, net.num_subnets + 1):
            assert all_logits[k - 1].shape == (2, 10)
            torch.testing.assert_close(all_logits[k - 1], net.forward_subnet(x, k), rtol=1e-4, atol=1e-4)
            features, step_logits = net.subnet_step(trunk, cached, k)  # the board's escalation path
            assert features.shape == (2, net.feature_offsets[k])
            if cached is not None:
                torch.testing.assert_close(features[:, :net.feature_offsets[k - 1]], cached)
            torch.testing.assert_close(step_logits, all_logits[k - 1], rtol=1e-4, atol=1e-4)
            cached = features


def test_widths_list_and_camera_size():
    net = make_net("mobilenet", widths=(0.1, 0.2, 0.3), img_size=64).eval()
    with torch.no_grad():
        logits = net(images(1, 64))
    assert [tuple(t.shape) for t in logits] == [(1, 10)] * 3
    assert net.feature_offsets == [0, *[sum(net.feature_dims[:k]) for k in (1, 2, 3)]]
    assert net.feature_dims[0] < net.feature_dims[1] < net.feature_dims[2]


def grads_of_subnet_loss(net, k, frozen, owner=None):
    net.zero_grad(set_to_none=True)
    net(images(4), frozen_update=frozen, trunk_owner=owner)[k - 1].sum().backward()

    def has_grad(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    return has_grad(net.trunk), [has_grad(b) for b in net.branches], has_grad(net.head)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("owner", [None, 2])
def test_frozen_update_blocks_exactly_the_claimed_gradients(arch, owner):
    net = make_net(arch).train()
    owner_k = owner or net.num_subnets
    for k in range(1, net.num_subnets + 1):
        trunk, branches, head = grads_of_subnet_loss(net, k, frozen=True, owner=owner)
        assert trunk == (k == owner_k), f"subnet {k}: trunk grad only for the owner {owner_k}"
        assert branches == [j == k for j in range(1, net.num_subnets + 1)], f"subnet {k}: only branch {k}"
        assert head


def test_without_frozen_update_gradients_reach_every_input():
    net = make_net("resnet").train()
    trunk, branches, head = grads_of_subnet_loss(net, 3, frozen=False)
    assert trunk and head and branches == [True, True, True, False]


def test_config_refuses_bad_widths_and_arch():
    from host import methods
    with pytest.raises(ValueError, match="sum"):
        methods.build_network(NetConfig(widths=[0.5, 0.6]))
    with pytest.raises(ValueError, match="mobilenet"):
        NetConfig(arch="vgg")


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_blocks_start_as_the_identity(arch):
    """Zero-initialized last BatchNorm scale: every block with a plain residual passes its input through."""
    from host.network import BasicBlock, InvertedResidual
    torch.manual_seed(0)
    net = DynamicNet(NetConfig(arch=arch, widths=[0.25, 0.25])).eval()
    blocks = [m for m in net.modules() if isinstance(m, InvertedResidual) and m.residual]
    blocks += [m for m in net.modules() if isinstance(m, BasicBlock) and isinstance(m.shortcut, torch.nn.Identity)]
    assert blocks
    for block in blocks:
        channels = block.body[0][0].in_channels
        x = torch.rand(2, channels, 8, 8)
        expected = x if isinstance(block, InvertedResidual) else torch.relu(x)
        torch.testing.assert_close(block(x), expected)


def test_the_pi4_estimate_follows_its_public_figures_and_never_falls_with_macs():
    from host.complexity import pi4_estimate_ms
    assert pi4_estimate_ms(300e6) == pytest.approx(46.0)  # XNNPACK's MobileNetV2 1.0/224, fp32
    assert pi4_estimate_ms(30e6) == pytest.approx(30 * 46 / 300 * 1.4)  # a small model: 1.4x per MAC
    estimates = [pi4_estimate_ms(m * 1e6) for m in range(1, 400)]
    assert all(b >= a for a, b in zip(estimates, estimates[1:]))
