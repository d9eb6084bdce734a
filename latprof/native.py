"""Keeping native libraries' chatter (TensorFlow, LiteRT C++ logs) off the user's terminal."""

from __future__ import annotations

import contextlib
import io
import os


@contextlib.contextmanager
def quiet_native_output():
    """Silence what native code and TensorFlow print (Python prints, C++ logs on fd 1 and 2)."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()):
        try:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
