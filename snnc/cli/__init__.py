"""The command line: the only place that prints or exits.

Each command is a module with `add(subparsers)` (its parser, help and examples) and `run(args) -> int`;
`COMMANDS` is the table of them. Errors in the user's input or environment (`SnncError`) print their
located message and exit 1 (130 when the user interrupted); anything else is a bug in snnc and says so.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..compiler.source import SnncError
from ..version import __version__
from . import check, nir, simulate, train
from .common import Formatter, Parser, unknown_arguments

COMMANDS = (check.CHECK, check.BUILD, train.TRAIN, train.EVAL, simulate.SIMULATE, check.VERIFY, nir.EXPORT,
            nir.IMPORT)

EPILOG = """\
examples:
  snnc check models/fc2_mnist.snn                    # neurons, derivatives, layer table
  snnc train models/fc2_mnist.snn --max-steps 5      # smoke run: 5 batches, then evaluate
  snnc train models/fc2_mnist.snn                    # train with the model's own recipe
  snnc eval models/fc2_mnist.snn --checkpoint runs/Fc2Mnist/best.pt

Training reads its dataset from --data-dir or $SNNC_DATA_DIR. 'snnc COMMAND --help' says more about each command.
"""


def parser() -> Parser:
    p = Parser(
        prog="snnc", formatter_class=Formatter, epilog=EPILOG,
        description="snnc compiles spiking neural networks described in .snn files into PyTorch modules and "
                    "fused kernels, and trains, evaluates, simulates and exports them.")
    p.add_argument("--version", action="version", version=f"snnc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked before any command imports torch: a mistake is a `UsageError`."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra:
        sub = next(a for a in p._actions if a.dest == "command").choices[args.command]
        raise unknown_arguments(sub, extra)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        return args.run(args)
    except SnncError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("snnc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback unless asked to
        if os.environ.get("SNNC_DEBUG"):
            raise
        if type(exc).__name__ in ("ParameterError", "StateError", "BackendError", "ShapeError") or isinstance(exc, OSError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"snnc: internal error: {type(exc).__name__}: {exc}\n"
              "  = hint: this is a bug in snnc; rerun with SNNC_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return 2
