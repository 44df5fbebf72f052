"""The flag vocabulary every command shares, so that a flag means the same thing in every tool.

| flag          | means, in every tool that has it                                             |
|---------------|-------------------------------------------------------------------------------|
| `--bundle`    | a bundle folder (holds model/manifest.json); default: the bundle around device/ |
| `--board`     | a board profile name, a .toml path, or `auto` (detect; the default)           |
| `--threads`   | interpreter threads, a whole number >= 1; default: the board profile's         |
| `--precision` | `fp32` or `int8`, the bundle files to run                                      |
| `--runtime`   | the TFLite runtime to force; default: the first installed                      |
| `--data`      | an image folder tree or a .tar.gz of one (host tools)                          |
| `--out`       | the folder the command writes its result into (checkpoint, bundle root, report, results) |

`run_cli` runs a tool's main and turns a UserError into one `error:` line and its exit status.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from device.engine.runtime import RUNTIMES
from device.errors import UserError

PRECISIONS = ("fp32", "int8")
BUDGET_FORMS = "a positive time such as 40ms, 0.04s or 40 (milliseconds)"


class UsageError(UserError):
    """A flag the parser refused: bad form, unknown flag, a required one missing."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose refusals are UsageErrors (one line, exit 2), not usage + exit."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive(kind):
    """An argparse type: a `kind` (int or float) above zero."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"'{text}' must be above zero")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def parse_budget(text: str) -> float:
    """'40ms', '0.04s' or '40' (milliseconds) -> seconds; anything else (or <= 0) is refused."""
    if re.fullmatch(r"\s*-.*", str(text)):
        raise argparse.ArgumentTypeError(f"--budget '{text}' is negative; give {BUDGET_FORMS}")
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*", str(text))
    if not match:
        raise argparse.ArgumentTypeError(f"--budget '{text}' is not {BUDGET_FORMS}")
    value = float(match.group(1)) / (1.0 if match.group(2) == "s" else 1000.0)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--budget '{text}' must be above zero; give {BUDGET_FORMS}")
    return value


def parse_budgets(text: str) -> list[float]:
    """'5ms,8ms,0.012s' (the --budget forms, comma-separated) -> milliseconds."""
    return [parse_budget(part) * 1e3 for part in text.split(",")]


def negative_values_as_values(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """`--budget -5ms` -> `--budget=-5ms`: argparse would read '-5ms' as a flag and answer
    'expected one argument'; joined, the value reaches its parser, which names the mistake."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in flags and i + 1 < len(argv) and argv[i + 1].startswith("-") and argv[i + 1][1:2].isdigit():
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def add_bundle(parser, default_text: str = "the bundle this device/ folder sits in") -> None:
    parser.add_argument("--bundle", type=Path, help=f"bundle folder, the one holding model/manifest.json "
                                                    f"(default: {default_text})")


def add_board(parser) -> None:
    parser.add_argument("--board", default="auto",
                        help="board profile: a name from profiles/ (rpi4, rpi5, jetson-nano, jetson-orin-nano, "
                             "x86_64), a .toml path, or auto to detect (default)")


def add_threads(parser, default_text: str = "the board profile's") -> None:
    parser.add_argument("--threads", type=positive(int), help=f"interpreter threads, >= 1 (default: {default_text})")


def add_precision(parser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="bundle files to run: fp32 (default) or int8 (where the bundle has them)")


def add_runtime(parser) -> None:
    parser.add_argument("--runtime", choices=list(RUNTIMES),
                        help="force a runtime: litert (ai-edge-litert, the default where installed), "
                             "tflite-runtime or tensorflow")


def add_out(parser, what: str, default_text: str) -> None:
    parser.add_argument("--out", type=Path, help=f"{what} (default: {default_text})")


def run_cli(main, argv=None) -> int:
    """main(argv) -> exit status, with a UserError printed as one `error:` line and its status,
    and Ctrl-C as exit 130 without a traceback."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
