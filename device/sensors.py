"""Board temperature and CPU load, read the way the board profile says.

psutil's sensors_temperatures() is tried first with the profile's keys; on a Jetson a hwmon
sensor can hide the thermal zones from psutil, so /sys/class/thermal/thermal_zone*/{type,temp}
(millidegrees C) is the fallback. No sensor gives None: a report then says "not available" and
nothing invents a number.
"""
from pathlib import Path

import psutil

from device.boards import BoardProfile


def _psutil_temperature(names: tuple[str, ...], sensors_fn) -> float | None:
    """Hottest reading of the first profile key psutil knows, in degrees C."""
    try:
        found = sensors_fn() or {}
    except (AttributeError, OSError, RuntimeError):
        return None
    for name in names:
        readings = [e.current for e in found.get(name, []) if e.current is not None]
        if readings:
            return float(max(readings))
    return None


def _thermal_zone_temperature(types: tuple[str, ...], sysfs_root: Path) -> float | None:
    """Reading of the first thermal zone whose type is one of `types` (profile order), in degrees C."""
    zones = {}
    for zone in sorted((sysfs_root / "sys/class/thermal").glob("thermal_zone*")):
        try:
            zones.setdefault(
                (zone / "type").read_text().strip().lower(), (zone / "temp").read_text().strip())
        except OSError:
            continue
    for wanted in types:
        raw = zones.get(wanted.lower())
        if raw is None:
            continue
        try:
            return int(raw) / 1000.0
        except ValueError:
            continue
    return None


def read_temperature(profile: BoardProfile, sensors_fn=None,
                     sysfs_root: str | Path = "/") -> float | None:
    """The board temperature in degrees C, or None when no sensor of the profile is readable."""
    sensors_fn = sensors_fn or getattr(psutil, "sensors_temperatures", lambda: {})
    value = _psutil_temperature(profile.psutil_sensors, sensors_fn)
    if value is None:
        value = _thermal_zone_temperature(profile.thermal_zones, Path(sysfs_root))
    return value


def cpu_load() -> float:
    """System CPU use in percent since the previous call or psutil's import (non-blocking)."""
    return float(psutil.cpu_percent(interval=None))
