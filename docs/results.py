"""Write docs/results.md, and the Result column of the README's accuracy table, from the benches'
JSON, so the published figures are the measured ones.

    python docs/results.py [--input runs/bench] [-o docs/results.md] [--readme README.md]

Every ``NAME.json`` a bench wrote becomes a section: the command that reproduces it, when and on
which commit it ran, then each table the JSON holds (a dict of figures as two columns, a list of
flat rows as a table).  Commands' raw outputs (``outputs``, ``profile``, ``validate``...) stay in
the JSON.  A bench with no JSON in ``--input`` (not run this time) keeps its section of the page
as it was.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import common  # noqa: E402  (bench/common.py: the benches' table cells)

ORDER = ("host_accuracy", "zoo_accuracy", "predictor_accuracy", "space_profile", "phone_loopback", "kills",
         "lookup_speed", "train_speed", "controllers", "controller_drift")
CONTEXT = ("bench", "command", "started", "commit", "uncommitted_changes", "host", "cpus", "python")
RAW = {"outputs", "profile", "lut_build", "validate", "phone_provenance", "lut_provenance"}
MAX_ROWS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("runs/bench"), help="folder of the benches' JSON")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="README whose accuracy table to set")
    args = parser.parse_args()
    found = {path.stem: path for path in args.input.glob("*.json")}
    if not found:
        raise SystemExit(f"no bench JSON in {args.input}: run the benches first (python bench/NAME.py)")
    kept = earlier_sections(args.output)
    names = [name for name in ORDER if name in found or name in kept] + sorted((set(found) | set(kept)) - set(ORDER))
    parts = ["# Results\n",
             "The current figures of latprof's benches on the machine named in each section, written by "
             "`python docs/results.py` from `runs/bench/*.json`. Each section's command reproduces it; "
             "on a shared machine figures move from run to run.\n"]
    for name in names:
        parts.append(section(name, json.loads(found[name].read_text())) if name in found else kept[name])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(parts))
    print(f"wrote {args.output} from {len(found)} benches' JSON ({', '.join(n for n in names if n in found)}); "
          f"kept the sections of {', '.join(n for n in names if n not in found) or 'none'}")
    print(f"set {update_readme(args.readme, found)} results in {args.readme}'s accuracy table")


def earlier_sections(page: Path) -> dict[str, str]:
    """The sections (``## NAME`` to the next one) of the results page as it is, by bench name."""
    if not page.is_file():
        return {}
    sections = {}
    for chunk in page.read_text().split("\n## ")[1:]:
        name = chunk.split("\n", 1)[0].strip()
        sections[name] = "## " + chunk.rstrip("\n") + "\n"
    return sections


def _within(m: dict) -> str:
    return (f"{_short(m.get('within_10_pct'))}% within ±10%, {_short(m.get('within_5_pct'))}% within ±5%, "
            f"MAPE {_short(m.get('mape_pct'))}%")


def _short(value: object) -> str:
    """A percentage in a table cell: whole numbers, and a 'median (min-max)' string kept as is."""
    return f"{value:.0f}" if isinstance(value, (int, float)) else str(value)


# What the README's accuracy table says of each bench, from its JSON.
HEADLINES = {
    "host_accuracy": lambda d: (f"{len(d['repeats'])} repeats, within ±10% / ±5%: "
                                + ", ".join(f"{_short(r['within_10_pct'])}/{_short(r['within_5_pct'])}%" for r in d["repeats"])
                                + "; reference drift " + ", ".join(f"{r['reference_drift_pct']:+.0f}" for r in d["repeats"])
                                + "%; unpaced within ±10%: "
                                + ", ".join(f"{_short(r.get('unpaced_within_10_pct'))}%" for r in d["repeats"])),
    "zoo_accuracy": lambda d: (f"{d['summary']['models']} models: {_within(d['summary'])}; reference drift "
                               f"{d['summary']['reference_drift_pct']:+.0f}%; against the profiled variants timed with "
                               f"them: {_short(d['summary']['within_10_pct_vs_profiled'])}% within ±10%"),
    "predictor_accuracy": lambda d: (f"ops: MAPE {_short(d['summary']['held_out_ops']['mape_pct'])}%; "
                                     f"their networks: {_within(d['summary']['networks_lut_plus_predictor'])}"),
    "space_profile": lambda d: (f"{d['summary']['wall time (min)']} min; {d['accuracy']['networks']} other "
                                f"networks: {_within(d['accuracy'])}; reference drift "
                                f"{d['accuracy']['reference_drift_pct']:+.0f}%"),
    "phone_loopback": lambda d: (f"{d['accuracy']['networks']} networks: {_within(d['accuracy'])}; reference drift "
                                 f"{d['accuracy']['reference_drift_pct']:+.0f}%"),
}
MARKER = "<!-- figures: docs/results.md -->"


def update_readme(readme: Path, found: dict[str, Path]) -> int:
    """Set the Result column of the README's accuracy table (the one after MARKER) from the
    benches' JSON; returns how many rows it set."""
    lines = readme.read_text().split("\n")
    start = lines.index(MARKER)
    updated = 0
    for i in range(start + 3, len(lines)):
        if not lines[i].startswith("|"):
            break
        cells = lines[i].split(" | ")
        name = next((n for n in HEADLINES if f"bench/{n}.py" in cells[1]), None)
        if name in found:
            cells[2] = HEADLINES[name](json.loads(found[name].read_text())).replace("|", "/") + " |"
            lines[i] = " | ".join(cells)
            updated += 1
    readme.write_text("\n".join(lines))
    return updated


def section(name: str, data: dict) -> str:
    """One bench's figures as markdown."""
    lines = [f"## {name}\n", f"`{data.get('command', f'python bench/{name}.py')}`: commit "
             f"{str(data.get('commit') or '?')[:10]}{' (with uncommitted changes)' if data.get('uncommitted_changes') else ''}, "
             f"{data.get('started', '?')}, {data.get('cpus', '?')} CPUs.\n"]
    for key, value in data.items():
        if key in CONTEXT or key in RAW:
            continue
        if isinstance(value, dict) and value and all(_scalar(v) for v in _flat(value).values()):
            lines.append(f"**{key}**\n")
            lines.append(_table([{"": k, "value": v} for k, v in _flat(value).items()]))
        elif isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            rows = [{k: v for k, v in row.items() if _scalar(v)} for row in value]
            lines.append(f"**{key}** ({len(rows)} rows{f', first {MAX_ROWS}' if len(rows) > MAX_ROWS else ''})\n")
            lines.append(_table(rows[:MAX_ROWS]))
        elif _scalar(value) and value is not None:
            lines.append(f"- {key}: {common.cell(value)}\n")
    return "\n".join(lines)


def _flat(figures: dict) -> dict:
    """A dict of figures with its dicts of figures spread out as ``outer.inner`` entries."""
    flat = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    return flat


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(common.cell(row.get(c, "")).replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
