"""Training: distillation loss, augmentation, schedule, a tiny real run, checkpoints and resume."""
import pytest
import torch

from host import checkpoint
from host.checkpoint import CheckpointError
from host.data import load_cifar_like
from host.network import DynamicNet, NetConfig
from host.training import TrainConfig, augment, distillation_loss, lr_at, subnet_losses, train
from tests.torch_threads import one_thread  # noqa: F401  (autouse fixture)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_distillation_loss_zero_iff_student_equals_teacher(temperature):
    logits = torch.randn(8, 10)
    assert distillation_loss(logits, logits, temperature).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(torch.randn(8, 10), logits, temperature).item() > 0


def test_smaller_subnets_learn_from_the_largest():
    labels = torch.randint(0, 10, (8,))
    teacher = torch.randn(8, 10, requires_grad=True)
    student = teacher.detach().clone().requires_grad_()
    losses = subnet_losses([student, teacher], labels, TrainConfig(distill=True, distill_alpha=0.0))
    assert losses[0].item() == pytest.approx(0.0, abs=1e-6)  # student == teacher: nothing to learn
    losses[0].backward()
    assert teacher.grad is None  # the teacher's predictions are detached
    label_loss = torch.nn.functional.cross_entropy(student, labels).item()
    mixed = subnet_losses([student, teacher], labels, TrainConfig(distill=True, distill_alpha=0.5))
    assert mixed[0].item() == pytest.approx(0.5 * label_loss, rel=1e-5)
    assert mixed[1].item() == pytest.approx(torch.nn.functional.cross_entropy(teacher, labels).item())
    plain = subnet_losses([student, teacher], labels, TrainConfig(distill=False))
    assert plain[0].item() == pytest.approx(label_loss)


def test_augment_crops_and_flips_uint8():
    images = torch.arange(2 * 8 * 8 * 3, dtype=torch.int64).remainder(250).to(torch.uint8).view(2, 8, 8, 3)
    out = augment(images, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    again = augment(images, torch.Generator().manual_seed(0), pad=2)
    assert torch.equal(out, again)  # seeded
    unchanged = augment(images, torch.Generator().manual_seed(0), pad=0)
    for a, b in zip(unchanged, images):  # without padding only a flip is possible
        assert torch.equal(a, b) or torch.equal(a, b.flip(1))


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 0.1) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 1e-3


def test_tiny_real_run_lowers_loss_and_resumes(cifar_tar, tmp_path):
    splits = load_cifar_like(cifar_tar, img_size=32, limit_train=256, calib_size=64, seed=0, limit_test=64)
    net = DynamicNet(NetConfig(arch="resnet", widths=[0.125, 0.125]))
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, device="cpu")
    history = train(net, splits, cfg, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"][-1] < history[0]["loss"][-1]  # the largest subnet's label loss

    cfg.epochs = 4  # resume adds one epoch to the three in the checkpoint
    resumed_net, _ = checkpoint.load(tmp_path)
    resumed = train(resumed_net, splits, cfg, checkpoint_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in resumed] == [1, 2, 3, 4]

    loaded, config = checkpoint.load(tmp_path, expected_arch="resnet")
    assert config["train"]["epochs"] == 4 and config["net"]["widths"] == [0.125, 0.125]
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), resumed_net.eval()(x))
    with pytest.raises(CheckpointError, match="resnet"):
        checkpoint.load(tmp_path, expected_arch="mobilenet")


def test_low_res_phase_then_full_size_and_a_fractional_last_epoch(cifar_tar):
    """epochs 1.4 with low_res_epochs 1: one epoch at the low size, then 0.4 of one at full size."""
    splits = load_cifar_like(cifar_tar, img_size=32, limit_train=160, calib_size=32, seed=0, limit_test=32)
    net = DynamicNet(NetConfig(arch="resnet", widths=[0.125, 0.125]))
    sides = []
    net.trunk.register_forward_pre_hook(lambda module, args: sides.append(args[0].shape[-1]))
    cfg = TrainConfig(epochs=1.4, batch_size=32, lr=0.05, device="cpu", low_res_size=16, low_res_epochs=1.0)
    history = train(net, splits, cfg)
    assert sides == [16] * 5 + [32] * 2  # 160 images / 32 = 5 steps per epoch; 1.4 epochs = 7 steps
    assert [h["epoch"] for h in history] == [1, 2]


def test_random_resized_crop_gives_crops_of_the_asked_size_and_flips():
    from host.training import random_resized_crop
    x = torch.arange(2 * 3 * 20 * 20, dtype=torch.float32).reshape(2, 3, 20, 20)
    out = random_resized_crop(x, 12, torch.Generator().manual_seed(0), min_scale=0.35)
    assert out.shape == (2, 3, 12, 12) and out.is_contiguous(memory_format=torch.channels_last)
    assert out.min() >= x.min() and out.max() <= x.max()  # samples of the image, no padding values
    whole = torch.Generator().manual_seed(1)
    seen = {round(random_resized_crop(x[:1], 20, whole, min_scale=1.0, ratio=(1.0, 1.0))[0, 0, 0, 0].item(), 3)
            for _ in range(20)}
    assert seen == {x[0, 0, 0, 0].item(), x[0, 0, 0, -1].item()}  # the whole image, as is or mirrored


def test_random_resized_crops_follow_the_seed():
    from host.training import random_resized_crop
    x = torch.rand(4, 3, 16, 16)
    a = random_resized_crop(x, 8, torch.Generator().manual_seed(5), 0.35)
    b = random_resized_crop(x, 8, torch.Generator().manual_seed(5), 0.35)
    c = random_resized_crop(x, 8, torch.Generator().manual_seed(6), 0.35)
    assert torch.equal(a, b) and not torch.equal(a, c)
