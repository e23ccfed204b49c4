"""Project exceptions: each carries a message a user can act on; the CLI prints it as one line."""


class CodefocusError(Exception):
    """Base class for every error codefocus reports to a user."""


class DataError(CodefocusError):
    """A data directory or file is missing or malformed."""


class UnknownNameError(CodefocusError):
    """An unknown method, model, benchmark or task name."""


class InvalidArgumentError(CodefocusError):
    """An argument outside its valid range (for example K <= 0)."""
