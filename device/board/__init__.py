"""The board: its profile (TOML), its sensors (psutil, sysfs) and the thread count it runs best at."""
from device.board.profiles import (BoardError, BoardProfile, detect_board, known_boards, load_profile, profiles_dir,
                                   resolve_profile)
from device.board.sensors import BoardSensors, Reading, SensorSampler, cpu_load, read_temperature
from device.board.threads import keep_faster

__all__ = ["BoardError", "BoardProfile", "BoardSensors", "Reading", "SensorSampler", "cpu_load", "detect_board",
           "keep_faster", "known_boards", "load_profile", "profiles_dir", "read_temperature", "resolve_profile"]
