"""What the commands share: the parser (mistakes reported as snnc reports any, exit 1), the argument types
checked before anything heavy is imported, the help formatter and the table of commands' shape."""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..compiler.source import SnncError, did_you_mean

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


# ------------------------------------------------------------------ argument mistakes
class UsageError(SnncError):
    """A mistake in the command line: one error line and a hint, exit 1 (like every user error)."""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are `UsageError`s with a hint ("did you mean", where to read more) instead of a
    usage dump and exit 2 (which snnc keeps for its own failures). An option is spelt out whole: a prefix
    (`--epoch` for `--epochs`) is a mistake with a "did you mean", never taken silently for another option."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        message, hint = _explain(self, message)
        raise UsageError(message, hint=hint)

    def options(self) -> list[str]:
        return [o for a in self._actions for o in a.option_strings]


_ARGUMENT = re.compile(r"argument (?P<arg>[^:]+): (?P<rest>.*)", re.S)
_CHOICE = re.compile(r"invalid choice: '(?P<got>[^']*)' \(choose from (?P<choices>.*)\)", re.S)
_VALUE = re.compile(r"invalid (?P<type>\w+) value: '(?P<got>[^']*)'")
_TYPES = {"int": "a whole number", "float": "a number"}


def _explain(parser: Parser, message: str) -> tuple[str, str]:
    """(message, hint) for one of argparse's messages."""
    more = f"'{parser.prog} --help' lists every option"
    if message.startswith("the following arguments are required: "):
        missing = message.split(": ", 1)[1]
        commands = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if commands and missing == "COMMAND":
            return f"{parser.prog}: missing COMMAND", f"one of {', '.join(commands[0])}; {more}"
        return f"{parser.prog}: missing {missing}", _example(parser) or more
    m = _ARGUMENT.fullmatch(message)
    if not m:
        return f"{parser.prog}: {message}", more
    arg, rest = m["arg"].split("/")[-1], m["rest"]
    if c := _CHOICE.fullmatch(rest):
        choices = [x.strip().strip("'") for x in c["choices"].split(",")]
        what = "command" if arg == "COMMAND" else f"{arg} value"
        return (f"{parser.prog}: unknown {what} '{c['got']}'",
                did_you_mean(c["got"], choices) or f"choose from {', '.join(choices)}")
    if v := _VALUE.fullmatch(rest):
        return f"{parser.prog}: {arg} takes {_TYPES.get(v['type'], v['type'])}, not '{v['got']}'", more
    return f"{parser.prog}: {arg}{' ' if rest.startswith('takes ') else ': '}{rest}", more


def _example(parser: Parser) -> str | None:
    lines = (parser.epilog or "").splitlines()
    return f"e.g. {lines[1].strip().split('  #')[0].strip()}" if len(lines) > 1 else None


def unknown_arguments(parser: Parser, extra: list[str]) -> UsageError:
    """The error for arguments no option of `parser` takes: the first of them, with the closest option."""
    first = extra[0]
    if first.startswith("-"):
        name = first.split("=", 1)[0]
        return UsageError(f"{parser.prog}: unknown option '{name}'",
                          hint=did_you_mean(name, parser.options()) or f"'{parser.prog} --help' lists every option")
    return UsageError(f"{parser.prog}: unexpected argument '{first}'",
                      hint=f"'{parser.prog} --help' says which arguments it takes")


def count(text: str) -> int:
    """An argument that counts something (batches, epochs, images, steps, processes): a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number, not '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of at least 1, not {value}")
    return value


def existing_file(text: str) -> str:
    """A file the command reads (a model, a checkpoint, a graph), checked before torch is imported."""
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "last.pt").is_file():  # a run's folder stands for its last.pt (checkpoint.resolve)
            return text
        raise SnncError(f"{text} is a folder, not a file", hint="give the file's path")
    if not path.exists():
        raise SnncError(f"no such file: {text}", hint=_near(path) or "check the path")
    return text


def _near(path: Path) -> str | None:
    try:
        names = [p.name for p in (path.parent if str(path.parent) else Path(".")).iterdir()]
    except OSError:
        return None
    return did_you_mean(path.name, names)
