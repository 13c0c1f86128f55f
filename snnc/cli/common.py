"""What the commands share: the help formatter and the table of commands' shape."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written (paragraphs, aligned examples), option help wrapped."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=30, width=100)


@dataclass(frozen=True)
class Command:
    """One row of the command table: its name, one-line help, description, examples and arguments."""

    name: str
    help: str
    description: str
    examples: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    def add(self, sub) -> argparse.ArgumentParser:
        p = sub.add_parser(self.name, help=self.help, description=self.description, formatter_class=Formatter,
                           epilog="examples:\n" + self.examples if self.examples else None)
        self.arguments(p)
        p.set_defaults(run=self.run)
        return p
