"""JSON on disk that survives a kill: append-only JSON-lines files (how run folders keep
measurements across kills and resumes) and documents replaced in one atomic rename."""

from __future__ import annotations

import json
import os
from pathlib import Path

from latprof.errors import LatprofError


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
    """Append records durably; first cut off a torn last line left by a killed writer."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[:data.rfind(b"\n") + 1])
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(record) + "\n" for record in records))
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a whole file under a temporary name, then rename it over ``path``: a reader (or a
    killed writer) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: str | Path, document, indent: int | None = 0) -> None:
    write_text_atomic(path, json.dumps(document, indent=indent))
