"""Source text, spans, and the one user-facing error type.

Every error snnc reports to a user is an `SnncError` holding one or more
`Diagnostic`s. Library code raises; only the CLI prints and exits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """A `.snn` file's text and the name it is reported under."""

    name: str
    text: str

    @classmethod
    def read(cls, path: str | Path) -> "Source":
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SnncError(f"no such file: {path}", hint="check the path; .snn files are plain text") from None
        except IsADirectoryError:
            raise SnncError(f"{path} is a directory, not a .snn file") from None
        except OSError as exc:
            raise SnncError(f"cannot read {path}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:  # located, the line not shown (it is not text)
            before = data[:exc.start]
            line, col = before.count(b"\n") + 1, len(before.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
            raise SnncError(f"{path} is not UTF-8 text (byte {exc.start})", Span(str(path), line, col, line, col + 1),
                            "save the file as UTF-8; .snn files are plain text") from None
        return cls(str(path), text)

    def line(self, lineno: int) -> str:
        lines = self.text.splitlines()
        return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """1-based line/column range in a source file (end column exclusive)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    message: str
    span: Span | None = None
    hint: str | None = None
    source: Source | None = field(default=None, compare=False)

    def render(self) -> str:
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}error: {self.message}"]
        if self.span and self.source is not None:
            text = self.source.line(self.span.line).expandtabs(1)
            if text:
                gutter = " " * len(str(self.span.line))
                width = (
                    max(1, self.span.end_col - self.span.col)
                    if self.span.end_line == self.span.line
                    else max(1, len(text) - self.span.col + 1)
                )
                out += [
                    f"{gutter} |",
                    f"{self.span.line} | {text}",
                    f"{gutter} | {' ' * (self.span.col - 1)}{'^' * width}",
                ]
        if self.hint:
            pad = " " * (len(str(self.span.line)) + 1) if self.span and self.source is not None else ""
            out.append(f"{pad}= hint: {self.hint}")
        return "\n".join(out)


class SnncError(Exception):
    """An error in the user's input or environment, reported without a traceback."""

    exit_code = 1

    def __init__(
        self,
        message: str | None = None,
        span: Span | None = None,
        hint: str | None = None,
        source: Source | None = None,
        diagnostics: list[Diagnostic] | tuple[Diagnostic, ...] = (),
    ):
        diags = list(diagnostics)
        if message is not None:
            diags.insert(0, Diagnostic(message, span, hint, source))
        self.diagnostics = tuple(diags)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n\n".join(d.render() for d in self.diagnostics)


class Diagnostics:
    """The errors of one pass, collected so that all of them are reported together (`raise_if_any`).

    `sources`: the source every error is shown in (a `Source`), or the sources by file name (a dict), looked
    up by each error's span."""

    def __init__(self, sources: "Source | dict[str, Source] | None" = None):
        self.sources = sources
        self.diags: list[Diagnostic] = []

    def __bool__(self) -> bool:
        return bool(self.diags)

    def _source(self, span: Span | None) -> Source | None:
        if isinstance(self.sources, dict):
            return self.sources.get(span.file) if span is not None else None
        return self.sources

    def error(self, message: str, where, hint: str | None = None, source: Source | None = None) -> None:
        """An error at `where`: a span, or an IR node (its span), or None."""
        span = getattr(where, "span", where)
        self.diags.append(Diagnostic(message, span, hint, source or self._source(span)))

    def extend(self, exc: SnncError) -> None:
        """The diagnostics of an error raised below, shown in their sources where they carry none."""
        self.diags += [Diagnostic(d.message, d.span, d.hint, d.source or self._source(d.span)) for d in exc.diagnostics]

    def raise_if_any(self) -> None:
        if self.diags:
            raise SnncError(diagnostics=self.diags)


class Interrupted(SnncError):
    """The user stopped a command (Ctrl-C, SIGTERM) and it stopped cleanly: exit status 130, as shells expect."""

    exit_code = 130


def did_you_mean(name: str, candidates) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
