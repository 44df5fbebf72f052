"""Board temperature and CPU load, read the way the board profile says.

psutil's sensors_temperatures() is tried first with the profile's keys; on a Jetson a hwmon
sensor can hide the thermal zones from psutil, so /sys/class/thermal/thermal_zone*/{type,temp}
(millidegrees C) is the fallback. No sensor gives None: a report then says "not available" and
nothing invents a number.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from device.board.profiles import BoardProfile


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


@dataclass(frozen=True)
class Reading:
    """One look at the board: system CPU %, CPU % of other processes, temperature (C or None)."""
    cpu_load: float | None
    other_load: float | None
    temperature: float | None


class BoardSensors:
    """CPU load and temperature through psutil (read_temperature reads the board profile's sensors).

    other_load subtracts this process's own share, so a busy cascade does not look like
    contention from elsewhere.
    """

    def __init__(self, profile):
        self._profile = profile
        self._process = psutil.Process()
        self._cores = os.cpu_count() or 1
        cpu_load()  # psutil measures CPU use between calls: start both clocks now
        self._process.cpu_percent(None)

    def __call__(self) -> Reading:
        system = cpu_load()
        own = self._process.cpu_percent(None) / self._cores
        return Reading(system, max(0.0, system - own), read_temperature(self._profile))


class SensorSampler:
    """Reads the sensors at most once per period: psutil and sysfs are too slow for every frame."""

    def __init__(self, read, clock=time.monotonic, period_s: float = 0.5):
        self._read = read
        self._clock = clock
        self._period_s = period_s
        self._next = float("-inf")
        self.reading = Reading(None, None, None)

    def poll(self) -> Reading:
        now = self._clock()
        if now >= self._next:
            self.reading = self._read()
            self._next = now + self._period_s
        return self.reading
