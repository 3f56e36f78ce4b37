"""dpfctl's exit codes (docs/dpfctl.md) and the one-line error every failure ends in."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the daemon or etcd could not be reached, or the request failed
EXIT_USAGE = 2  # a wrong command line, or no configuration to find the daemon or etcd by
EXIT_NOT_FOUND = 3  # the object asked about does not exist
EXIT_INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """What went wrong, in one line for the user, and the exit code it ends with."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, whatever the daemon or etcd said
        self.code = code
