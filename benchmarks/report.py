"""Writing results: ``<run>/<task>.json`` per task, and ``summary.md`` / ``summary.csv`` / ``summary.png``.

The summary has one row per task (category, metric, value, baseline); a ``control`` column holds the randomly
initialised backbone's value when the run had one, side by side with the checkpoint's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from xtrimo.io import write_csv, write_json, write_text

CATEGORY_ORDER = ("structure", "interactions", "functionality", "developability")
COLUMNS = ("task", "paper_task", "category", "metric", "value", "std", "control", "baseline", "status", "note")


def write_task(result: dict, out_dir: str | Path) -> Path | None:
    """Write ``out_dir/<task>.json`` (atomically). An earlier result of the task from another configuration
    (``config_sha``) is not overwritten: it moves to ``out_dir/superseded/<task>.<sha>.json`` first.

    Returns:
        where the earlier result was kept, or None.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result['task']}.json"
    kept = None
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("config_sha") != result.get("config_sha"):
            kept = out / "superseded" / f"{result['task']}.{old.get('config_sha', 'unknown')}.json"
            kept.parent.mkdir(exist_ok=True)
            path.replace(kept)
    write_json(path, result, indent=1, default=_json_default)
    return kept


def collect(out_dir: str | Path, fresh: list[dict]) -> list[dict]:
    """``fresh`` results plus those of earlier invocations already in ``out_dir`` (re-running a task replaces
    its row), so a suite run in several pieces still gets one summary."""
    by_task = {}
    for path in sorted(Path(out_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and "task" in record and "status" in record:
            by_task[record["task"]] = record
    by_task.update({r["task"]: r for r in fresh})
    return list(by_task.values())


def _json_default(obj: object) -> object:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _chosen_layers(result: dict) -> str:
    """The hidden states the probe chose per seed (``backbone.layers``), e.g. ``2/2/3``; "" without selection."""
    picked = [str(run["chosen"]["layer"]) for run in result.get("runs", []) if "layer" in run.get("chosen", {})]
    return "/".join(picked)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def summary_rows(results: list[dict]) -> list[dict]:
    """Rows in the paper's order (category, then task number; extra tasks last within their category)."""
    rows = []
    for r in results:
        control = r.get("control", {})
        note = r.get("reason") if r["status"] != "ok" else (r.get("split_note") or "")
        if r.get("subsampled"):
            n = r["n"]
            note = f"subsampled to {n['train']} / {n['valid']} / {n['test']} (train / valid / test). {note}"
        chosen = [(name, ks) for name, x in (("", r), ("control ", control)) if (ks := _chosen_layers(x))]
        if chosen:
            note = "hidden state chosen on valid: " + ", ".join(f"{name}{ks}" for name, ks in chosen) + f". {note}"
        rows.append({
            "task": r["task"], "paper_task": r.get("paper_task") or "", "category": r["category"],
            "metric": r["metric"], "value": _fmt(r.get("value")), "std": _fmt(r.get("std")),
            "control": _fmt(control.get("value")) if control.get("status") == "ok" else "",
            "baseline": _fmt(r.get("baseline"), 2), "status": r["status"], "note": note or "",
        })
    order = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    return sorted(rows, key=lambda x: (order.get(x["category"], 9), x["paper_task"] or 99, x["task"]))


def write_summary(results: list[dict], out_dir: str | Path, title: str) -> list[Path]:
    """summary.csv, summary.md and summary.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results)
    write_csv(out / "summary.csv", rows, COLUMNS)
    write_text(out / "summary.md", _markdown(rows, results, title))
    paths = [out / "summary.csv", out / "summary.md"]
    if any(r["status"] == "ok" for r in rows):
        paths.append(_plot(rows, out / "summary.png", title))
    return paths


def _markdown(rows: list[dict], results: list[dict], title: str) -> str:
    has_control = any(r["control"] for r in rows)
    head = ["task", "#", "category", "metric", "value", "± std", *(["control"] if has_control else []), "baseline",
            "status", "note"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["task"], str(r["paper_task"]), r["category"], r["metric"], r["value"], r["std"],
                 *([r["control"]] if has_control else []), r["baseline"], r["status"], r["note"].replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    ok = [r for r in results if r["status"] == "ok"]
    lines += ["", f"{len(ok)} of {len(results)} tasks ran; {len(results) - len(ok)} skipped or failed "
                  "(reason in note).",
              "`value` is the mean over seeds of the test metric (one seed where the splits are fixed and the probe "
              "deterministic); `baseline` is the published number named in each task's JSON (`baseline_source`)."]
    if has_control:
        wins = sum(1 for r in rows
                   if r["control"] and r["value"] and _better(r, float(r["value"]), float(r["control"])))
        compared = sum(1 for r in rows if r["control"] and r["value"])
        lines.append(f"The checkpoint beats its randomly initialised control on {wins} of {compared} tasks.")
    return "\n".join(lines) + "\n"


def _better(row: dict, value: float, other: float) -> bool:
    return value < other if row["metric"] == "rmse" else value > other


def _plot(rows: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in rows if r["status"] == "ok"]
    x = np.arange(len(ok))
    series = [("value", "this run")]
    if any(r["control"] for r in ok):
        series.append(("control", "random control"))
    if any(r["baseline"] for r in ok):
        series.append(("baseline", "published baseline"))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(ok) + 2), 4.2))
    for k, (key, label) in enumerate(series):
        vals = [float(r[key]) if r[key] else np.nan for r in ok]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['task']}\n({r['metric']})" for r in ok], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("test metric")
    ax.set_title(title)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
