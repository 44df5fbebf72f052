"""systemd notifications (Type=notify, WatchdogSec) over $NOTIFY_SOCKET with the stdlib only.

Outside systemd NOTIFY_SOCKET is unset and every call does nothing. Under systemd the daemon
sends READY=1 once the model is loaded and WATCHDOG=1 at half the watchdog interval; if the
loop hangs, systemd kills and restarts the service (Restart=on-failure).
"""
import logging
import os
import socket
import time

log = logging.getLogger("dynedge.watchdog")


class SystemdNotifier:
    def __init__(self, environ=os.environ, clock=time.monotonic):
        self.clock = clock
        self._address = environ.get("NOTIFY_SOCKET") or None
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]  # abstract socket namespace
        usec = environ.get("WATCHDOG_USEC")
        pid = environ.get("WATCHDOG_PID")
        watched = usec and usec.isdigit() and (pid is None or pid == str(os.getpid()))
        self.watchdog_period_s = int(usec) / 2e6 if watched else None
        self._next_ping = float("-inf")

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> None:
        if not self.enabled:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:  # the camera loop must not die because the notify socket went away
            log.warning("systemd notify %r failed: %s", message.split("\n")[0], exc)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def ping(self) -> None:
        """WATCHDOG=1 when half the watchdog interval has passed since the last one."""
        if self.watchdog_period_s is None:
            return
        now = self.clock()
        if now >= self._next_ping:
            self.notify("WATCHDOG=1")
            self._next_ping = now + self.watchdog_period_s

    def stopping(self) -> None:
        self.notify("STOPPING=1")
