"""The project's user-facing error: the CLI prints it as one line, never a traceback."""


class RtrecError(Exception):
    """An error the user can act on; the message says what failed and what to do."""
