"""Board profiles parse, detection works on fake /proc trees, and bad input says what to fix."""
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from device.board import (BoardError, cpu_load, detect_board, known_boards, load_profile, profiles_dir,
                          read_temperature, resolve_profile)

EXPECTED_BOARDS = {"rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "x86_64"}
Reading = namedtuple("Reading", "label current high critical")


def fake_tree(root: Path, model: str = "", compatible: tuple[str, ...] = (),
              tegra_release: str = "") -> Path:
    """A minimal /proc/device-tree (NUL-terminated strings, as the kernel writes them) under root."""
    dt = root / "proc/device-tree"
    dt.mkdir(parents=True)
    if model:
        (dt / "model").write_bytes(model.encode() + b"\x00")
    if compatible:
        (dt / "compatible").write_bytes(b"".join(c.encode() + b"\x00" for c in compatible))
    if tegra_release:
        (root / "etc").mkdir()
        (root / "etc/nv_tegra_release").write_text(tegra_release)
    return root


def test_every_profile_parses_with_every_field():
    assert EXPECTED_BOARDS <= set(known_boards())
    for name in known_boards():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.cores >= 1 and 1 <= profile.default_threads <= profile.cores
        assert profile.psutil_sensors and profile.thermal_zones
        assert 0 < profile.soft_throttle_c <= profile.hard_throttle_c
        assert profile.camera and profile.budget_ms > 0
        assert "thermal" in profile.notes and "budget" in profile.notes  # figures say their source


def test_raspberry_pi_throttle_figures():
    for name in ("rpi4", "rpi5"):
        profile = load_profile(name)
        assert (profile.soft_throttle_c, profile.hard_throttle_c) == (80.0, 85.0)
        assert "cpu_thermal" in profile.psutil_sensors
        assert profile.throttle_state(79.9) == "none"
        assert profile.throttle_state(82.0) == "soft"
        assert profile.throttle_state(85.0) == "hard"
        assert profile.throttle_state(None) == "unknown"


@pytest.mark.parametrize("board, tree", [
    ("rpi4", dict(model="Raspberry Pi 4 Model B Rev 1.4",
                  compatible=("raspberrypi,4-model-b", "brcm,bcm2711"))),
    ("rpi5", dict(model="Raspberry Pi 5 Model B Rev 1.0",
                  compatible=("raspberrypi,5-model-b", "brcm,bcm2712"))),
    ("jetson-nano", dict(model="NVIDIA Jetson Nano Developer Kit",
                         compatible=("nvidia,p3450-0000", "nvidia,jetson-nano", "nvidia,tegra210"),
                         tegra_release="# R32 (release), REVISION: 7.1, GCID: 29818004, "
                                       "BOARD: t210ref, EABI: aarch64")),
    ("jetson-orin-nano", dict(model="NVIDIA Jetson Orin Nano Developer Kit",
                              compatible=("nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005",
                                          "nvidia,tegra234"),
                              tegra_release="# R36 (release), REVISION: 3.0, BOARD: generic")),
    # Without a model string: compatible alone, then the Jetson release file alone.
    ("jetson-orin-nano", dict(compatible=("nvidia,p3767-0003", "nvidia,tegra234"))),
    ("jetson-nano", dict(tegra_release="# R32 (release), REVISION: 4.3, BOARD: t210ref")),
])
def test_detection_from_fake_proc_trees(tmp_path, board, tree):
    root = fake_tree(tmp_path, **tree)
    assert detect_board(root, machine="aarch64").name == board
    assert resolve_profile(None, root=root).name == board


def test_plain_x86_64_host_detected_from_machine(tmp_path):
    assert detect_board(tmp_path, machine="x86_64").name == "x86_64"


def test_unknown_board_falls_back_to_generic_with_warning(tmp_path):
    root = fake_tree(tmp_path, model="Pine64 RockPro64 v2.1")
    with pytest.warns(UserWarning, match="rpi4.*x86_64|no profile matches"):
        profile = detect_board(root, machine="aarch64")
    assert profile.name == "generic-aarch64"
    assert "RockPro64" in profile.description


def test_unknown_board_name_lists_known_ones():
    with pytest.raises(BoardError) as err:
        resolve_profile("orange-pi")
    message = str(err.value)
    assert "orange-pi" in message
    assert all(name in message for name in EXPECTED_BOARDS)


@pytest.mark.parametrize("edit, field", [
    (lambda s: s.replace("soft_throttle_c = 80.0", "soft_throttle_c = \"hot\""),
     "thermal.soft_throttle_c"),
    (lambda s: s.replace("cores = 4\n", ""), "cpu.cores"),
    (lambda s: s.replace("default_threads = 4", "default_threads = 9"), "cpu.default_threads"),
    (lambda s: s.replace("budget_ms = 60.0", "budget_ms = -1"), "runtime.budget_ms"),
    (lambda s: s.replace('psutil_sensors = ["cpu_thermal"]', "psutil_sensors = [1]"),
     "thermal.psutil_sensors"),
])
def test_malformed_profile_names_the_field(tmp_path, edit, field):
    source = (profiles_dir() / "rpi4.toml").read_text()
    bad = tmp_path / "rpi4.toml"
    bad.write_text(edit(source))
    with pytest.raises(BoardError, match=field.replace(".", r"\.")):
        load_profile(bad)


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("name = \n")
    with pytest.raises(BoardError, match="broken.toml is not valid TOML"):
        load_profile(bad)


def test_profiles_found_beside_device_in_a_bundle_layout(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    shutil.copy(profiles_dir() / "rpi5.toml", tmp_path / "profiles")
    monkeypatch.setenv("DYNEDGE_PROFILES", str(tmp_path / "profiles"))
    assert known_boards() == ["rpi5"]


def test_temperature_from_psutil_key():
    profile = load_profile("rpi4")
    fake = {"cpu_thermal": [Reading("", 61.3, None, None)], "other": [Reading("", 99.0, None, None)]}
    assert read_temperature(profile, sensors_fn=lambda: fake) == pytest.approx(61.3)


def test_temperature_from_thermal_zone_fallback(tmp_path):
    for i, (kind, milli) in enumerate([("AO-therm", "40500"), ("CPU-therm", "52500")]):
        zone = tmp_path / f"sys/class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    profile = load_profile("jetson-nano")
    assert read_temperature(profile, lambda: {}, sysfs_root=tmp_path) == pytest.approx(52.5)


def test_no_sensor_reads_none(tmp_path):
    assert read_temperature(load_profile("rpi4"), lambda: {}, sysfs_root=tmp_path) is None


def test_cpu_load_is_a_percentage():
    assert 0.0 <= cpu_load() <= 100.0 * 64


@pytest.mark.parametrize("board, camera", [("rpi4", "picamera2"), ("rpi5", "picamera2"),
                                           ("jetson-nano", "csi://0"), ("jetson-orin-nano", "csi://0")])
def test_default_camera_uses_the_boards_camera_stack(board, camera):
    """A Pi camera goes through Picamera2; csi://N is the Jetson GStreamer pipeline."""
    assert load_profile(board).camera == camera
