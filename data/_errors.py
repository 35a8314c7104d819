"""The one exception type for user mistakes.

Anything a user can cause (a bad file, option, symbol or range) raises :class:`GruowError`
with a one-line message naming the file/row/option and what it must be. The CLI prints that
line and exits non-zero, without a traceback. Programming errors stay ordinary exceptions.
"""


class GruowError(Exception):
    """A user-facing error: the message is shown as is, on one line."""
