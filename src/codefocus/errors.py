"""Every error codefocus reports to a user, in one hierarchy.

Each carries a message a user can act on; the CLI prints it as one line (exit 2 for bad input,
1 for the rest). ``RECOVERABLE`` is what a long job records as a unit's failure before it goes on.
"""


class CodefocusError(Exception):
    """Base class for every error codefocus reports to a user."""

    exit_status = 2  # the command line's exit status: 2 for bad input, 1 for a failed run


class DataError(CodefocusError):
    """A data directory or file is missing or malformed."""


class UnknownNameError(CodefocusError):
    """An unknown method, model, benchmark or task name."""


class InvalidArgumentError(CodefocusError):
    """An argument outside its valid range (for example K <= 0)."""


class ModelLoadError(CodefocusError):
    """A model could not be found or loaded."""


class PackagedModelError(ModelLoadError):
    """The packaged model is missing, of the wrong version, or fails its hash."""


class ContextTooLongError(CodefocusError):
    """A prompt (plus the tokens to generate) does not fit the model's context window."""


class EndpointError(CodefocusError):
    """The endpoint could not be reached, refused us, or answered nonsense."""


class OutputError(CodefocusError):
    """A finished result could not be written where asked (it was kept elsewhere)."""

    exit_status = 1


class MethodsFailedError(CodefocusError):
    """Every requested method failed: nothing useful ran."""

    exit_status = 1


class SchemaError(DataError):
    """A stored result was written by another schema version, or breaks its invariants."""


# what a study or a method run records as a failed unit (and then goes on): our own errors, and
# what torch raises for out-of-memory or an unsupported operation
RECOVERABLE: tuple[type[BaseException], ...] = (CodefocusError, RuntimeError, MemoryError)
