"""The errors graphc raises at people.

Every message names the op, the shapes involved and, where known, the user's
source line, so that a failure points at the user's code and not at graphc's.
"""


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose."""


class ShapeError(GraphcError, ValueError):
    """An op was given inputs or attributes whose shapes or dtypes do not fit."""


class TraceError(GraphcError, RuntimeError):
    """User code did something that cannot be recorded into a graph."""


class OutOfRangeError(GraphcError, IndexError):
    """An index, a dimension or a class target outside the range its tensor allows.

    Also an IndexError, as PyTorch's (and Python's) errors for the same mistakes are.
    """


class OutOfMemoryError(GraphcError, MemoryError):
    """A tensor too large for this machine's memory, refused before anything is allocated."""


class BackendError(GraphcError, RuntimeError):
    """A backend failed to compile or run a graph."""


class CheckpointError(GraphcError, IOError):
    """A checkpoint could not be written or read back."""


class VerifyError(GraphcError, ValueError):
    """A graph broke one of the IR's invariants."""


class ParseError(GraphcError, ValueError):
    """Text IR did not parse; the message names the line and column."""

    # A longer source line is shown as an excerpt of this many characters around the column.
    EXCERPT_WIDTH = 100

    def __init__(self, message: str, line: int, column: int, source_line: str = ""):
        self.line = line
        self.column = column
        text = f"line {line}, column {column}: {message}"
        if source_line:
            shown, caret = _excerpt(source_line, column - 1, self.EXCERPT_WIDTH)
            text += f"\n    {shown}\n    {' ' * caret}^"
        super().__init__(text)


def _excerpt(line: str, index: int, width: int) -> tuple[str, int]:
    """``line``, or the ``width`` characters of it around ``index`` marked with '...', and where
    ``index`` is in what is shown."""
    if len(line) <= width:
        return line, index
    start = min(max(0, index - width // 2), len(line) - width)
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + width < len(line) else ""
    return prefix + line[start:start + width] + suffix, index - start + len(prefix)
