"""The camera daemon: the frame loop, and its systemd notification and watchdog."""
from device.service.daemon import LoopStats, run_loop
from device.service.watchdog import SystemdNotifier

__all__ = ["LoopStats", "SystemdNotifier", "run_loop"]
