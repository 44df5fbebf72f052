"""Camera and file sources behind one interface: read() gives the next BGR uint8 frame.

--source forms (jetson-inference style URIs):
  0, 1, ...         a V4L2/USB camera index
  picamera2         the Raspberry Pi camera through Picamera2
  csi://N           a Jetson CSI camera through GStreamer (nvarguscamerasrc)
  rtsp://..., http(s)://...  a network stream
  a video file      read in order, every frame (--loop starts it again)
  a folder or glob  images in sorted order (--loop starts again)

Live sources are read by a grabber thread that keeps only the newest frame: OpenCV and
Picamera2 both buffer frames by default, and a queue of old frames would add its length to
the latency. Frames overwritten before the loop took them are counted as drops. A camera
that stops giving frames is released and reopened with exponential backoff (logged), and
the daemon keeps running meanwhile. Files and folders are not live: nothing is dropped, unless
--fps plays them with a camera's timing (PacedSource).
Frames that cannot be decoded are skipped and counted as bad.
"""
from __future__ import annotations

import glob
import logging
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from device.errors import UserError

log = logging.getLogger("dynedge.sources")

ACCEPTED_FORMS = ("a camera index (0), picamera2, csi://N (Jetson CSI), rtsp://... or http(s)://... "
                  "URL, a video file, a folder of images, or a quoted glob such as 'frames/*.jpg'")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
LOST_AFTER_FAILURES = 5     # consecutive failed reads after which a live camera counts as lost


class SourceError(UserError, ValueError):
    """A --source value that names nothing usable; the message lists the accepted forms."""


def _good(frame) -> bool:
    return isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.size > 0


class ImageFiles:
    """Images from a list of paths, in order; unreadable ones are skipped and counted."""

    def __init__(self, paths: list[Path], loop: bool = False, describe: str = ""):
        self.paths = paths
        self.loop = loop
        self.describe = describe or f"{len(paths)} image(s)"
        self._next = self._decoded = 0
        self.ended = False
        self.drops = self.bad_frames = self.reconnects = 0

    def read(self, timeout_s: float = 1.0):
        while not self.ended:
            if self._next >= len(self.paths):
                if not self.loop or self._decoded == 0:  # looping images that never decode would spin
                    self.ended = True
                    break
                self._next = self._decoded = 0
            path = self.paths[self._next]
            self._next += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if _good(frame):
                self._decoded += 1
                return frame
            self.bad_frames += 1
            log.warning("skipping unreadable image %s", path)
        return None

    def close(self) -> None:
        self.ended = True


class ArraySource:
    """Frames from an in-memory array (N, H, W, 3) BGR, cycled from `start`, `count` of them (None:
    without end), as fast as the loop takes them; `index` is the array index of the frame read()
    gave last. The profiler, the benchmarks and the tests feed the daemon's loop with it (wrapped
    in PacedSource for camera timing)."""

    def __init__(self, frames_bgr: np.ndarray, start: int = 0, count: int | None = None):
        self.frames = frames_bgr
        self.start, self.count = start, count
        self.describe = f"{len(frames_bgr)} in-memory frame(s)"
        self.given = 0
        self.index = -1
        self.ended = False
        self.drops = self.bad_frames = self.reconnects = 0

    def read(self, timeout_s: float = 1.0):
        if self.ended or (self.count is not None and self.given >= self.count):
            self.ended = True
            return None
        self.index = (self.start + self.given) % len(self.frames)
        self.given += 1
        return self.frames[self.index]

    def close(self) -> None:
        self.ended = True


class PacedSource:
    """A recorded source (video file, image folder, array) played with a live camera's timing.

    Frame i is due i / fps seconds after the first read. A read that comes early waits for the
    next frame; one that comes late gets the newest frame due, and the frames before it are read
    and dropped, as a camera's grabber thread overwrites the frames the loop did not take.
    """

    def __init__(self, source, fps: float, clock=time.monotonic, sleep=time.sleep):
        if fps <= 0:
            raise SourceError(f"--fps {fps} must be above zero")
        self.source, self.fps = source, float(fps)
        self.describe = f"{source.describe}, paced at {fps:g} fps"
        self._clock, self._sleep = clock, sleep
        self._start = None
        self._next = 0  # index of the frame the next read gives at the earliest
        self._dropped = 0

    @property
    def ended(self) -> bool:
        return self.source.ended

    @property
    def drops(self) -> int:
        return self.source.drops + self._dropped

    @property
    def bad_frames(self) -> int:
        return self.source.bad_frames

    @property
    def reconnects(self) -> int:
        return self.source.reconnects

    def read(self, timeout_s: float = 1.0):
        now = self._clock()
        if self._start is None:
            self._start = now
        due = int((now - self._start) * self.fps + 1e-9)  # the newest frame that has arrived
        if self._next > due:
            self._sleep(self._start + self._next / self.fps - now)
        while self._next < due:
            if self.source.read(timeout_s) is None:
                return None
            self._next += 1
            self._dropped += 1
        self._next += 1
        return self.source.read(timeout_s)

    def close(self) -> None:
        self.source.close()


class VideoFile:
    """Every frame of a video file in order; undecodable frames are skipped and counted."""

    def __init__(self, path: Path, loop: bool = False):
        self.path = path
        self.loop = loop
        self.describe = f"video {path}"
        self.ended = False
        self.drops = self.bad_frames = self.reconnects = 0
        self._cap = self._open()

    def _open(self):
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot open video file {self.path} (not a video OpenCV can decode)")
        # The container's frame count tells a frame that failed to decode from the end of the file.
        self._count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or None  # the file's own rate, where it says
        self._consumed = self._decoded = 0
        return cap

    def read(self, timeout_s: float = 1.0):
        while not self.ended:
            ok, frame = self._cap.read()
            if ok or self._consumed < self._count:
                self._consumed += 1
                if ok and _good(frame):
                    self._decoded += 1
                    return frame
                self.bad_frames += 1
                log.warning("skipping undecodable frame %d of %s", self._consumed, self.path)
                continue
            if not self.loop or self._decoded == 0:  # looping a file with no good frame would spin
                self.ended = True
                break
            self._cap.release()
            self._cap = self._open()
        return None

    def close(self) -> None:
        self.ended = True
        self._cap.release()


class LatestFrameGrabber:
    """A thread that reads a live camera continuously and keeps only the newest frame.

    `open_camera()` returns an object with read() -> (ok, frame) and release(); it is called
    again, with exponential backoff, whenever the camera is lost. `wait(seconds)` is
    injectable for tests; by default it returns early when the grabber is closed.
    """

    live = True  # frames come at the camera's rate, not the reader's

    def __init__(self, open_camera, describe: str, backoff_s=(0.5, 8.0), wait=None):
        self._open_camera = open_camera
        self.describe = describe
        self._backoff = backoff_s
        self._cond = threading.Condition()
        self._frame = None
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.ended = False
        self.drops = self.bad_frames = self.reconnects = 0
        self._thread = threading.Thread(target=self._run, name="dynedge-grabber", daemon=True)
        self._thread.start()

    def _open(self, attempt: int):
        """The camera, or None after logging the failure and waiting out the backoff."""
        try:
            return self._open_camera()
        except Exception as exc:  # camera libraries raise many types while a device is gone
            delay = min(self._backoff[0] * 2 ** attempt, self._backoff[1])
            log.warning("%s: cannot open (%s); retry %d in %.1f s", self.describe, exc, attempt + 1, delay)
            self._wait(delay)
            return None

    def _run(self) -> None:
        camera, attempt, failures, lost = None, 0, 0, False
        while not self._stop.is_set():
            if camera is None:
                camera = self._open(attempt)
                attempt = attempt + 1 if camera is None else 0
                if camera is not None and lost:
                    self.reconnects += 1
                    lost = False
                    log.warning("%s: reconnected", self.describe)
                continue
            ok, frame = camera.read()
            if ok and _good(frame):
                failures = 0
                with self._cond:
                    if self._frame is not None:
                        self.drops += 1
                    self._frame = frame
                    self._cond.notify()
                continue
            failures += 1
            self.bad_frames += 1
            if failures >= LOST_AFTER_FAILURES:
                log.warning("%s: camera lost after %d failed reads; reopening", self.describe, failures)
                camera.release()
                camera, failures, lost = None, 0, True
        if camera is not None:
            camera.release()

    def read(self, timeout_s: float = 1.0):
        """The newest frame not yet returned, waiting up to `timeout_s`; None if none came."""
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout_s)
            frame, self._frame = self._frame, None
        return frame

    def close(self) -> None:
        self._stop.set()
        self.ended = True
        self._thread.join(timeout=5.0)


class _Picamera2Camera:
    """Picamera2 behind the read()/release() interface; queue=False so a capture is never stale."""

    def __init__(self, size=(640, 480)):
        from picamera2 import Picamera2  # only on a Raspberry Pi with python3-picamera2
        self._cam = Picamera2()
        # RGB888 is laid out [B, G, R] in memory: what OpenCV calls BGR.
        config = self._cam.create_video_configuration(main={"size": size, "format": "RGB888"}, queue=False)
        self._cam.configure(config)
        self._cam.start()

    def read(self):
        return True, self._cam.capture_array("main")

    def release(self):
        self._cam.stop()
        self._cam.close()


def jetson_csi_pipeline(sensor_id: int, width=1280, height=720, fps=30) -> str:
    """GStreamer pipeline for a Jetson CSI camera; appsink keeps one buffer and drops the rest."""
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM), width={width}, "
            f"height={height}, framerate={fps}/1, format=NV12 ! nvvidconv ! video/x-raw, format=BGRx ! "
            f"videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false")


def _opencv_opener(target, api=cv2.CAP_ANY, describe=""):
    """A function that opens an OpenCV capture with a one-frame buffer, or raises."""
    def open_capture():
        cap = cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"OpenCV cannot open {describe or target}")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # not every backend honours it; the grabber drains anyway
        return cap
    return open_capture


def _image_list(pattern: str) -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).suffix.lower() in IMAGE_EXTENSIONS]


def open_source(spec: str, loop: bool = False):
    """--source value -> a source; SourceError lists the accepted forms for anything else."""
    spec = str(spec).strip()
    if re.fullmatch(r"\d+", spec):
        api = cv2.CAP_V4L2 if Path("/dev").joinpath(f"video{spec}").exists() else cv2.CAP_ANY
        return LatestFrameGrabber(_opencv_opener(int(spec), api, f"camera {spec}"), f"camera {spec}")
    if spec == "picamera2":
        return LatestFrameGrabber(_Picamera2Camera, "Pi camera (Picamera2)")
    if match := re.fullmatch(r"csi://(\d+)", spec):
        pipeline = jetson_csi_pipeline(int(match.group(1)))
        return LatestFrameGrabber(_opencv_opener(pipeline, cv2.CAP_GSTREAMER, spec), f"Jetson {spec}")
    if spec.lower().startswith(URL_SCHEMES):
        return LatestFrameGrabber(_opencv_opener(spec, cv2.CAP_FFMPEG), f"stream {spec}")
    path = Path(spec).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise SourceError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return ImageFiles(images, loop, f"folder {path} ({len(images)} images)")
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageFiles([path], loop, f"image {path}")
        return VideoFile(path, loop)
    if any(ch in spec for ch in "*?["):
        images = _image_list(spec)
        if not images:
            raise SourceError(f"glob '{spec}' matches no images")
        return ImageFiles(images, loop, f"glob {spec} ({len(images)} images)")
    raise SourceError(f"unknown source '{spec}' (no such file or folder); accepted forms: {ACCEPTED_FORMS}")


def pace(source, fps: str | None):
    """--fps applied to an opened source: None plays a file as fast as the loop takes it; a
    number, or `auto` for a video's own frame rate, plays it with camera timing (PacedSource).
    A live camera keeps its own rate."""
    if fps is None:
        return source
    if getattr(source, "live", False):
        raise SourceError(f"--fps {fps}: {source.describe} is a live source, which sets its own frame rate; "
                          f"--fps paces video files and image folders")
    if fps == "auto":
        rate = getattr(source, "fps", None)
        if rate is None:
            raise SourceError(f"--fps auto: {source.describe} has no frame rate of its own; give one, e.g. --fps 30")
        return PacedSource(source, rate)
    try:
        rate = float(fps)
    except ValueError:
        raise SourceError(f"--fps '{fps}' is not a number of frames per second or auto") from None
    return PacedSource(source, rate)
