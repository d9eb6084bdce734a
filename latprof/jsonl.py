"""JSON on disk that survives a kill: append-only JSON-lines files (how run folders keep
measurements across kills and resumes) and documents replaced in one atomic rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from latprof.errors import LatprofError

TMP_SUFFIX = ".tmp"  # what a file being written is called until it is complete (write_text_atomic)


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> list[dict]:
    """Records of a JSON-lines file; a torn last line (a run killed mid-write) is ignored, so that
    record is simply measured again; damage anywhere else is an error."""
    if not path.is_file():
        return []
    try:
        lines = path.read_bytes().decode().splitlines()
    except UnicodeDecodeError:
        raise LatprofError(f"{path}: not a text file; move it away and re-run") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or any(key not in record for key in required):
                raise ValueError(f"needs {', '.join(required)}")
        except ValueError as exc:
            if number == len(lines):
                continue
            raise LatprofError(f"{path}:{number}: corrupt record ({exc}); remove the line and re-run") from None
        records.append(record)
    return records


def append_jsonl(path: Path, records: list[dict]) -> None:
    """Append records durably.  A last line a killed writer left without its newline is first
    repaired: completed when it holds a whole record, cut off (a truncate, not a rewrite: a kill
    during the repair loses nothing more) when it is torn."""
    repair_tail(path)
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(record) + "\n" for record in records))
        handle.flush()
        os.fsync(handle.fileno())


def repair_tail(path: Path) -> None:
    """Make a JSON-lines file end with a newline: complete a whole last record, truncate a torn one."""
    if not path.is_file():
        return
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        start = max(0, size - (1 << 16))
        while True:  # find the start of the last line, reading back in blocks
            handle.seek(start)
            block = handle.read(size - start)
            newline = block.rfind(b"\n")
            if newline >= 0 or start == 0:
                break
            start = max(0, start - (1 << 16))
        line_start = start + newline + 1
        try:
            complete = isinstance(json.loads(block[newline + 1:]), dict)
        except ValueError:
            complete = False
        if complete:
            handle.write(b"\n")
        else:
            handle.truncate(line_start)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a whole file under a temporary name of its own in the same folder, sync it, then
    rename it over ``path``: a reader, a killed writer or a concurrent one sees the old file or a
    new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


def write_json(path: str | Path, document, indent: int | None = 0) -> None:
    write_text_atomic(path, json.dumps(document, indent=indent))
