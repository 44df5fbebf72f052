"""Sources: --source forms, files read in order without drops, corrupt frames skipped and counted,
the newest-frame grabber (drops counted, a lost camera reopened with backoff)."""
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from device.io.sources import (ArraySource, ImageFiles, PacedSource, LatestFrameGrabber, SourceError, VideoFile,
                               jetson_csi_pipeline, open_source, pace)
from tests.device_fakes import FakeClock


def write_video(path, frames=10, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    noise = np.random.default_rng(0).integers(0, 40, (size[1], size[0], 3), dtype=np.uint8)
    for i in range(frames):
        writer.write(noise + np.uint8(i * 20))  # brighter each frame; noise makes each JPEG large
    writer.release()
    return path


def corrupt_frames(path, which):
    """Wipe the JPEG header of the given frames so that they cannot be decoded."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    for j in which:
        data[starts[j]: starts[j] + 300] = bytes(300)
    path.write_bytes(bytes(data))


def drain(source, limit=1000):
    frames = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def test_video_file_reads_every_frame_in_order(tmp_path):
    source = open_source(str(write_video(tmp_path / "clip.avi")))
    assert isinstance(source, VideoFile)
    frames = drain(source)
    means = [f.mean() for f in frames]
    assert len(frames) == 10 and means == sorted(means)
    assert source.ended and source.drops == 0


def test_corrupt_video_frames_are_skipped_and_counted(tmp_path):
    path = write_video(tmp_path / "clip.avi")
    corrupt_frames(path, [3, 6])
    source = open_source(str(path))
    assert len(drain(source)) == 8
    assert source.bad_frames == 2 and source.ended


def test_loop_starts_a_file_again(tmp_path):
    source = open_source(str(write_video(tmp_path / "clip.avi", frames=4)), loop=True)
    assert len(drain(source, limit=10)) == 10 and not source.ended


def test_folder_and_glob_in_sorted_order_with_bad_image_skipped(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    (tmp_path / "img3.png").write_bytes(b"not a png")
    folder = open_source(str(tmp_path))
    assert isinstance(folder, ImageFiles)
    assert [int(f.mean()) for f in drain(folder)] == [0, 50, 100]
    assert folder.bad_frames == 1
    globbed = open_source(str(tmp_path / "img[01].png"))
    assert len(drain(globbed)) == 2


@pytest.mark.parametrize("spec", ["nosuchfile.mp4", "ftp://camera", "usb-camera"])
def test_unknown_source_lists_accepted_forms(spec):
    with pytest.raises(SourceError, match=r"accepted forms: a camera index \(0\), picamera2, csi://N"):
        open_source(spec)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))


def test_jetson_pipeline_keeps_one_buffer():
    pipeline = jetson_csi_pipeline(1)
    assert "nvarguscamerasrc sensor-id=1" in pipeline and "max-buffers=1" in pipeline


class FakeCamera:
    """Gives numbered frames; fails every read after `fail_after` reads (a camera unplugged)."""

    def __init__(self, counter, fail_after=None):
        self.counter = counter
        self.fail_after = fail_after
        self.reads = 0
        self.released = False

    def read(self):
        time.sleep(0.001)
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            return False, None
        self.counter[0] += 1
        return True, np.full((4, 4, 3), self.counter[0] % 256, np.uint8)

    def release(self):
        self.released = True


def test_grabber_keeps_only_the_newest_frame_and_counts_drops():
    counter = [0]
    grabber = LatestFrameGrabber(lambda: FakeCamera(counter), "fake camera")
    try:
        first = grabber.read(2.0)
        time.sleep(0.05)  # a slow consumer: the camera delivers many frames meanwhile
        newest = grabber.read(2.0)
        assert first is not None and newest is not None
        assert grabber.drops > 5
        assert abs(int(newest[0, 0, 0]) - counter[0] % 256) <= 2  # close to the latest, not a queued one
    finally:
        grabber.close()
    assert grabber.ended


def test_lost_camera_is_reopened_with_backoff():
    counter, opens, waits = [0], [], []
    lock = threading.Lock()

    def open_camera():
        with lock:
            opens.append(1)
            if len(opens) == 1:
                return FakeCamera(counter, fail_after=20)  # unplugged after 20 frames
            if len(opens) in (2, 3):
                raise OSError("device gone")
            return FakeCamera(counter)

    grabber = LatestFrameGrabber(open_camera, "fake camera", backoff_s=(0.01, 0.02), wait=waits.append)
    try:
        deadline = time.monotonic() + 5.0
        while grabber.reconnects < 1 and time.monotonic() < deadline:
            grabber.read(0.1)
        assert grabber.read(2.0) is not None  # frames flow again
    finally:
        grabber.close()
    assert grabber.reconnects == 1
    assert waits == [0.01, 0.02]  # exponential backoff, capped
    assert grabber.bad_frames >= 5


def test_array_source_cycles_from_its_start_and_ends_after_count():
    frames = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    source = ArraySource(frames, start=2, count=5)
    given = []
    while (frame := source.read()) is not None:
        given.append(source.index)
        assert np.array_equal(frame, frames[source.index])
    assert given == [2, 3, 0, 1, 2] and source.ended and source.drops == 0


def test_a_paced_source_waits_for_its_frames_and_drops_the_missed_ones():
    """Paced like a 10 fps camera: a loop that keeps up sleeps to the next frame; one that comes
    back late gets the newest frame, and those that came and went before it count as dropped."""
    clock = FakeClock(start=0.0)
    frames = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    inner = ArraySource(frames)
    source = PacedSource(inner, fps=10, clock=clock, sleep=clock.advance)
    assert source.read()[0, 0, 0] == 0          # frame 0 at t = 0
    clock.advance(0.02)
    assert source.read()[0, 0, 0] == 1          # frame 1 is due at t = 0.1: waits for it
    assert clock() == pytest.approx(0.1) and source.drops == 0
    clock.advance(0.45)                         # t = 0.55: frames 2..5 came at 0.2 .. 0.5
    assert source.read()[0, 0, 0] == 5          # the newest, at once
    assert clock() == pytest.approx(0.55) and source.drops == 3
    assert "paced at 10 fps" in source.describe


def test_fps_paces_files_only(tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=4)
    assert pace(open_source(str(video)), None).describe == f"video {video}"
    assert "paced at 10 fps" in pace(open_source(str(video)), "auto").describe  # the file says 10 fps
    assert "paced at 30 fps" in pace(open_source(str(video)), "30").describe
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(SourceError, match="no frame rate of its own"):
        pace(open_source(str(folder)), "auto")
    with pytest.raises(SourceError, match="not a number"):
        pace(open_source(str(folder)), "fast")
    with pytest.raises(SourceError, match="live source"):
        pace(SimpleNamespace(live=True, describe="camera 0"), "30")
