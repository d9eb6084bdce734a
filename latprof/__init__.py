"""latprof: per-op latency tables, predictors and platform-aware architecture search.

The library API (``latprof.api``) is importable from here: ``latprof.load_lut``,
``latprof.latency``, ... are loaded on first use, so that ``import latprof`` (and the CLI) stays
quick.
"""

import os

# TensorFlow and LiteRT log to stderr from C++ at import and on every conversion; a CLI tool
# should print only what it has to say.  Users can still raise the level themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["Architecture", "latencies", "latency", "load_lut", "load_predictor", "reward", "search_space"]


def __getattr__(name: str):
    if name in __all__:
        from latprof import api

        return getattr(api, name)
    raise AttributeError(f"module 'latprof' has no attribute {name!r}")
