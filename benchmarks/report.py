"""Writing a benchmark's results: ``<out>.md`` (the table, with the command that made it), ``<out>.json`` (the raw
numbers) and ``<out>.png`` (its plot), next to each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

__all__ = ["publish", "write_report"]


def write_report(out: str | Path, text: str, results: dict, plot: Callable[[dict, Path], None] | None = None) -> None:
    """Write ``out.{md,json,png}`` (``out`` without suffix; folders made as needed) and say so."""
    base = Path(out)
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".md").write_text(text)
    base.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    if plot is not None:
        plot(results, base.with_suffix(".png"))
    print(f"wrote {base}.{{md,json{',png' if plot is not None else ''}}}")


def publish(text: str, results: dict, out: str | Path | None, plot: Callable[[dict, Path], None] | None = None) -> dict:
    """Print a benchmark's table, write ``out.{md,json,png}`` when ``out`` is given, and return ``results`` with the
    table under ``"markdown"`` (not written to the JSON)."""
    print(text)
    if out:
        write_report(out, text, results, plot)
    results["markdown"] = text
    return results
