"""The one exception type users see: a problem with their input, said in one line."""


class LatprofError(Exception):
    """Bad input or a broken environment; the CLI prints the message and exits non-zero.

    The message must say what is wrong and what to do, because it is all the user sees.
    """
