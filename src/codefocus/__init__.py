"""codefocus: explain what a code model pays attention to."""

from codefocus.errors import CodefocusError

__version__ = "0.1.0"

__all__ = ["CodefocusError", "__version__"]
