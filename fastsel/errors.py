"""fastsel's own error types: bad input gets one line in the CLI, anything else a traceback.

``FastselError`` (a ValueError) and its subclasses are raised for input a user can fix: the CLI
prints their message as one line (exit 1, or 2 for ``UsageProblem``). Any other exception is a
bug: the CLI prints its traceback and the version, so it can be reported.
"""


class FastselError(ValueError):
    """Bad input to a fastsel function (a shape, a value, an argument out of range)."""


class DataError(FastselError):
    """A problem with the contents of an input file or the environment (exit status 1 in the CLI)."""


class UsageProblem(FastselError):
    """A command line that cannot work as given (exit status 2 in the CLI)."""


class ArgumentTypeError(FastselError, TypeError):
    """An argument of the wrong type (a bool or a string where a number is meant): a TypeError, and
    a FastselError so the CLI shows it as one line."""


class BackendUnavailable(DataError, RuntimeError):
    """``backend="cpp"`` where the compiled kernel is missing (the extension not built, not loaded,
    or no kernel for the device): a RuntimeError, and one line in the CLI (exit status 1)."""
