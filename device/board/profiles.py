"""Board profiles: what a board is, how many threads to use, where its temperature is, when it throttles.

One TOML file per board in profiles/ (read with tomllib, no extra dependency). In the repository
that folder sits beside device/; inside an unpacked bundle the build copies it to the bundle root,
again beside device/. DYNEDGE_PROFILES points elsewhere when needed.

The board is found from /proc/device-tree/model, /proc/device-tree/compatible, the Jetson release
file /etc/nv_tegra_release and platform.machine(); the match rules live in each profile's [detect]
table, so a new board is a new TOML file and no code change.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib  # Python 3.11+
except ImportError:  # JetPack 5 (3.8) and 6 (3.10): the same parser as a package
    import tomli as tomllib

from device.errors import UserError

FALLBACK_BOARD = "x86_64"  # the generic-host profile, used (renamed) for boards detection does not know


class BoardError(UserError, ValueError):
    """A board name or profile file that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class BoardProfile:
    """One board's figures; temperatures in degrees Celsius, budget in milliseconds."""
    name: str
    description: str
    cores: int
    default_threads: int
    psutil_sensors: tuple[str, ...]
    thermal_zones: tuple[str, ...]
    soft_throttle_c: float
    hard_throttle_c: float
    camera: str
    budget_ms: float
    notes: str
    detect_model: tuple[str, ...] = ()
    detect_compatible: tuple[str, ...] = ()
    detect_tegra_release: tuple[str, ...] = ()
    detect_machine: tuple[str, ...] = ()
    path: Path | None = None

    def throttle_state(self, temperature_c: float | None) -> str:
        """'hard', 'soft', 'none', or 'unknown' when no temperature could be read."""
        if temperature_c is None:
            return "unknown"
        if temperature_c >= self.hard_throttle_c:
            return "hard"
        if temperature_c >= self.soft_throttle_c:
            return "soft"
        return "none"


def profiles_dir() -> Path:
    """profiles/ beside device/ (repository root or bundle root), or $DYNEDGE_PROFILES."""
    env = os.environ.get("DYNEDGE_PROFILES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "profiles"


def known_boards(directory: Path | None = None) -> list[str]:
    """Names of the boards that have a profile, sorted."""
    directory = directory or profiles_dir()
    return sorted(p.stem for p in directory.glob("*.toml"))


def _field(data: dict, dotted: str, kind, source: str):
    """data['a']['b'] for 'a.b', checked against `kind`; a BoardError names the field otherwise."""
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise BoardError(f"profile {source}: missing field '{dotted}'")
        node = node[part]
    if kind is float and isinstance(node, int) and not isinstance(node, bool):
        node = float(node)
    if kind is int and node == "auto":
        return node
    if not isinstance(node, kind) or isinstance(node, bool):
        raise BoardError(f"profile {source}: field '{dotted}' must be {kind.__name__}, "
                         f"got {node!r}")
    return node


def _names(data: dict, dotted: str, source: str, required: bool) -> tuple[str, ...]:
    """A list of strings at `dotted`; optional lists default to empty."""
    section, _, key = dotted.partition(".")
    if not required and key not in data.get(section, {}):
        return ()
    values = _field(data, dotted, list, source)
    if not all(isinstance(v, str) for v in values):
        raise BoardError(f"profile {source}: field '{dotted}' must be a list of strings")
    return tuple(values)


def parse_profile(data: dict, source: str, path: Path | None = None) -> BoardProfile:
    """Build a BoardProfile from parsed TOML; 'auto' cores/threads come from os.cpu_count()."""
    cores = _field(data, "cpu.cores", int, source)
    cores = (os.cpu_count() or 1) if cores == "auto" else cores
    threads = _field(data, "cpu.default_threads", int, source)
    threads = min(cores, 4) if threads == "auto" else threads
    if cores < 1 or not 1 <= threads <= cores:
        raise BoardError(f"profile {source}: field 'cpu.default_threads' must be between 1 and "
                         f"cpu.cores ({cores}), got {threads}")
    soft = _field(data, "thermal.soft_throttle_c", float, source)
    hard = _field(data, "thermal.hard_throttle_c", float, source)
    if soft > hard:
        raise BoardError(f"profile {source}: field 'thermal.soft_throttle_c' ({soft}) is above "
                         f"thermal.hard_throttle_c ({hard})")
    budget = _field(data, "runtime.budget_ms", float, source)
    if budget <= 0:
        raise BoardError(f"profile {source}: field 'runtime.budget_ms' must be > 0, got {budget}")
    return BoardProfile(
        name=_field(data, "name", str, source),
        description=_field(data, "description", str, source),
        cores=cores,
        default_threads=threads,
        psutil_sensors=_names(data, "thermal.psutil_sensors", source, required=True),
        thermal_zones=_names(data, "thermal.thermal_zones", source, required=True),
        soft_throttle_c=soft,
        hard_throttle_c=hard,
        camera=_field(data, "runtime.camera", str, source),
        budget_ms=budget,
        notes=_field(data, "notes.text", str, source).strip(),
        detect_model=_names(data, "detect.model", source, required=False),
        detect_compatible=_names(data, "detect.compatible", source, required=False),
        detect_tegra_release=_names(data, "detect.tegra_release", source, required=False),
        detect_machine=_names(data, "detect.machine", source, required=False),
        path=path,
    )


def load_profile(name_or_path: str | Path, directory: Path | None = None) -> BoardProfile:
    """Load a profile by board name ('rpi4') or by path to a .toml file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        path = candidate
    else:
        directory = directory or profiles_dir()
        path = directory / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(known_boards(directory)) or f"none in {directory}"
            raise BoardError(f"no profile for board '{name_or_path}'; known boards: {known} "
                             f"(or pass a path to a .toml profile)")
    if not path.is_file():
        raise BoardError(f"profile file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"profile {path.name} is not valid TOML: {exc}") from None
    return parse_profile(data, path.name, path)


def _read_text(path: Path) -> str:
    """A /proc or /etc text file without its NUL separators; '' when absent or unreadable."""
    try:
        return path.read_bytes().replace(b"\x00", b"\n").decode("utf-8", "replace")
    except OSError:
        return ""


def _matches(text: str, needles: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(n.lower() in lowered for n in needles)


def detect_board(root: str | Path = "/", directory: Path | None = None,
                 machine: str | None = None) -> BoardProfile:
    """The profile of the board this runs on; an unknown board gets the generic one and a warning.

    `root` and `machine` are injectable so tests can use fake /proc trees.
    """
    root = Path(root)
    profiles = [load_profile(n, directory) for n in known_boards(directory)]
    model = _read_text(root / "proc/device-tree/model").strip()
    compatible = _read_text(root / "proc/device-tree/compatible")
    tegra_release = _read_text(root / "etc/nv_tegra_release")
    machine = machine or platform.machine()
    # Most specific evidence first: the model string, then compatible, then the release file.
    for text, rule in ((model, "detect_model"), (compatible, "detect_compatible"),
                       (tegra_release, "detect_tegra_release")):
        for profile in profiles:
            if text and _matches(text, getattr(profile, rule)):
                return profile
    if not (model or compatible or tegra_release):
        for profile in profiles:
            if machine in profile.detect_machine:
                return profile
    seen = model or ("a Jetson (/etc/nv_tegra_release)" if tegra_release else "") or machine
    fallback = load_profile(FALLBACK_BOARD, directory)
    generic = dataclasses.replace(fallback, name=f"generic-{machine}",
                                  description=f"Unknown board ({seen}); generic profile")
    warnings.warn(f"no profile matches this board ({seen}); using a generic profile "
                  f"({generic.cores} cores, throttle figures are estimates). Pass --board with one "
                  f"of: {', '.join(known_boards(directory))}, or add profiles/<board>.toml",
                  stacklevel=2)
    return generic


def resolve_profile(board_arg: str | None, root: str | Path = "/",
                    directory: Path | None = None) -> BoardProfile:
    """--board value to a profile: None or 'auto' detects; a name or a .toml path loads it."""
    if board_arg in (None, "", "auto"):
        return detect_board(root, directory)
    return load_profile(board_arg, directory)
