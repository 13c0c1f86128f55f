"""What the commands share: the help formatter and the table of commands' shape."""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Callable

_RECIPE = re.compile(r"\{recipe\.(\w+)\}")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written (paragraphs, aligned examples), option help wrapped. `{recipe.KEY}`
    in an option's help is the train block's default of KEY, read only when help is shown."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=30, width=100)

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        if text and "{recipe." in text:
            from ..train.recipe import defaults

            text = _RECIPE.sub(lambda m: str(defaults()[m[1]]), text)
        return text


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
