"""Where a `dvc repro` spends its time: each stage's wall time, read from the papermill record of its executed
notebook (notebooks/executed/*.ipynb, metadata papermill.duration), in pipeline order.

    python benchmarks/stage_times.py [--notebooks notebooks/executed] [--out results/runtime/stages]

Run it right after the `dvc repro` to measure (a cold one: `rm -rf data models` first, or `dvc repro --force`).
Writes OUT.csv and OUT.md (stage, notebook, start time, seconds, percent of the total) and prints the table; the
total also counts the gaps between stages (DVC hashing the outputs, starting papermill).
"""

import argparse
import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from paperlib.reporting.report import write_table


def stage_times(folder: Path) -> pd.DataFrame:
    """One row per executed notebook: stage (the notebook's name without its number), start, seconds."""
    rows = []
    for path in sorted(folder.glob("*.ipynb")):
        record = json.loads(path.read_text())["metadata"].get("papermill", {})
        if record.get("duration") is None:
            continue
        rows.append(
            {
                "stage": path.stem.split("_", 1)[-1],
                "notebook": path.name,
                "start": datetime.fromisoformat(record["start_time"]),
                "end": datetime.fromisoformat(record["end_time"]),
                "seconds": float(record["duration"]),
            }
        )
    return pd.DataFrame(rows).sort_values("start", kind="stable").reset_index(drop=True)


def with_total(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each stage's percent of the total and a last row: the wall time from the first start to the
    last end."""
    wall = (table["end"].max() - table["start"].min()).total_seconds()
    table = table.assign(percent=100 * table["seconds"] / wall, start=table["start"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    total = {"stage": "total (first start to last end)", "notebook": "", "start": "", "seconds": wall, "percent": 100.0}
    return pd.concat([table.drop(columns="end"), pd.DataFrame([total])], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="notebooks/executed")
    parser.add_argument("--out", default="results/runtime/stages")
    args = parser.parse_args()
    table = with_total(stage_times(Path(args.notebooks)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_table(table, args.out, floatfmt=".1f")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
