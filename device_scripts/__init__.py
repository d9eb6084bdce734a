"""The POSIX shell scripts latprof pushes to a phone and runs there (package data; see README.md)."""
