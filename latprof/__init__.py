"""latprof: per-op latency tables, predictors and platform-aware architecture search."""

import os

# TensorFlow and LiteRT log to stderr from C++ at import and on every conversion; a CLI tool
# should print only what it has to say.  Users can still raise the level themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
