"""The error hierarchy: every mistake a user can make raises a CaffeliteError.

Messages follow one shape: where (file:line, layer 'name' (Type)) then what was expected.
"""


class CaffeliteError(Exception):
    """Base of every error caffelite raises for bad input."""


class ParseError(CaffeliteError):
    """A prototxt or binary file could not be read as the message it should hold."""


class FileFormatError(CaffeliteError):
    """A file exists but is not in the format expected (truncated, corrupt, wrong kind)."""


class ShapeError(CaffeliteError):
    """Blob shapes do not fit together (bottoms, weights, reshape requests)."""


class NetError(CaffeliteError):
    """The network definition is inconsistent (unknown blob, wrong bottom count, ...)."""


class SolverError(CaffeliteError):
    """The solver definition or its state is unusable."""


class UnknownNameError(CaffeliteError, KeyError):
    """A registry was asked for a name it does not know."""

    def __str__(self):
        return str(self.args[0])
