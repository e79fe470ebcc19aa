"""The library's own error for input it refuses: every such error subclasses `UserError`.

The CLI turns a `UserError` into one line on stderr and exit status 2; any other exception is a
bug and keeps its traceback. Each message says what was wrong and what is valid. `UserError`
subclasses ``ValueError`` so ``except ValueError`` in user code keeps working.
"""


class UserError(ValueError):
    """Input the library refuses (a bad option, prompt, site, file); the message says what is valid."""


class UserFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or an asset to install) that is missing or unreadable."""


__all__ = ["UserError", "UserFileError"]
