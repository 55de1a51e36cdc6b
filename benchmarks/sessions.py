"""Real session lengths (the groundwork for sessions that end like real ones): sessions cut from the logs' timestamps
at several gap thresholds, their length distribution on train and test users, and the hazard of leaving after a liked
vs a disliked item and by position in the session. One run; nothing is fitted here.

Run: ``python -m benchmarks.sessions`` -> ``benchmarks/results/sessions.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["main"]


def summary(lengths: np.ndarray) -> dict[str, float]:
    q = np.percentile(lengths, [25, 50, 75, 90]) if len(lengths) else [np.nan] * 4
    return {"sessions": int(len(lengths)), "mean": float(lengths.mean()) if len(lengths) else float("nan"),
            "p25": float(q[0]), "median": float(q[1]), "p75": float(q[2]), "p90": float(q[3]),
            "single": float((lengths == 1).mean()) if len(lengths) else float("nan")}


def main(argv: list[str] | None = None) -> int:
    from recsim_env.data import load_dataset
    from recsim_env.sessions import leave_hazard, session_lengths

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--gaps", default="1800,3600,21600", help="gap thresholds in seconds (comma-separated)")
    p.add_argument("--out", default="benchmarks/results/sessions")
    args = p.parse_args(argv)
    ds = load_dataset(args.dataset)
    gaps = [float(g) for g in args.gaps.split(",")]
    rows, hazards, lengths_at = {}, {}, {}
    for gap in gaps:
        for split in ("train", "test"):
            lengths = session_lengths(ds, gap, ds.users(split))
            rows[f"{gap / 3600:g} h, {split} users"] = summary(lengths)
            lengths_at[(gap, split)] = lengths
        hazards[f"{gap / 3600:g} h"] = leave_hazard(ds, gap, ds.users("train"))
    # the leaving model: fitted on train users, replayed on test users' logs, against their real sessions
    from recsim_env.sessions import LeaveModel, ks_distance

    gap = gaps[len(gaps) // 2]
    real = lengths_at[(gap, "test")]
    models = {"constant hazard (geometric)": LeaveModel.fit(ds, gap, ds.users("train"), constant=True),
              "hazard by position and liked / disliked": LeaveModel.fit(ds, gap, ds.users("train"))}
    replays = {name: m.replay(ds, ds.users("test"), np.random.default_rng(0)) for name, m in models.items()}
    fits = {name: {"weights": m.weights.tolist(), "ks": ks_distance(replays[name], real), **summary(replays[name])}
            for name, m in models.items()}
    cmd = " ".join(["python -m benchmarks.sessions", *(argv if argv is not None else sys.argv[1:])])
    md = [f"# Sessions in the logs ({ds.name})", "", f"Command: `{cmd}`. A session: one user's consecutive interactions "
          "with every gap below the threshold. One run, nothing fitted.", "",
          "| threshold, users | sessions | mean length | p25 | median | p75 | p90 | single-item share |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    md += [f"| {k} | {v['sessions']:,} | {v['mean']:.1f} | {v['p25']:g} | {v['median']:g} | {v['p75']:g} | {v['p90']:g} | "
           f"{v['single']:.0%} |" for k, v in rows.items()]
    names = list(next(iter(hazards.values())))
    md += ["", "P(the session ends right after the interaction), train users:", "",
           "| after | " + " | ".join(hazards) + " |", "| --- | " + " | ".join("---:" for _ in hazards) + " |"]
    md += [f"| {n} | " + " | ".join(f"{h[n]['hazard']:.3f} (n={h[n]['n']:,})" for h in hazards.values()) + " |" for n in names]
    md += ["", f"Leaving model fitted on train users' sessions (gap < {gap / 3600:g} h), replayed on the test users' own logs "
           "(from each real session start the user meets its next logged items and leaves after each with the model's "
           "probability), against the test users' real sessions:", "",
           "| sessions | mean length | median | p90 | KS distance to real | weights [1, log(1+pos), disliked, liked] |",
           "| --- | ---: | ---: | ---: | ---: | --- |",
           f"| real, test users | {real.mean():.1f} | {np.median(real):g} | {np.percentile(real, 90):g} | - | - |"]
    md += [f"| {n} | {f['mean']:.1f} | {f['median']:g} | {f['p90']:g} | {f['ks']:.3f} | "
           f"{', '.join(f'{w:+.2f}' for w in f['weights'])} |" for n, f in fits.items()]
    md += ["", "Caveat: MovieLens users rate films they saw earlier, in bursts on the site; a rating session is the nearest "
           "logged analogue of a viewing session, not the same thing. Hazards by position fall partly because long "
           "sessions belong to a few heavy raters (no per-user adjustment here)."]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"summary": rows, "hazard": hazards, "leave_models": fits, "command": cmd},
                                                   indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    curves = {"real, train users": lengths_at[(gap, "train")], "real, test users": real,
              **{f"replayed: {n}": r for n, r in replays.items()}}
    for label, lengths in curves.items():
        x = np.sort(lengths)
        ax.plot(x, 1 - np.arange(len(x)) / len(x), label=label, ls="-" if label.startswith("real") else "--")
    ax.set(xscale="log", yscale="log", xlabel="session length (interactions)", ylabel="share of sessions >= length",
           title=f"{ds.name} sessions, gap < {gap / 3600:g} h")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
