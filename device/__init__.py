"""The board runtime: everything a Raspberry Pi or Jetson needs to run a bundle (numpy, OpenCV,
psutil and one TFLite runtime; never torch).

    bundle/     load and verify a bundle (manifest, sha256 of every file)
    engine/     runtimes, stages, the cascade that walks the exits with the feature cache
    policy/     exit thresholds, the router, the deadline guard's cost model
    io/         camera and file sources, preprocessing, telemetry, metrics, the overlay
    board/      board profiles, sensors, thread choice
    service/    the camera loop, systemd notification
    profiling/  the profiler behind profile.py, its timing harness, report and plots

run_camera.py and profile.py are the entry scripts.
"""
