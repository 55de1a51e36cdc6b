"""Sessions that end like real ones: sessions cut from the logs' timestamps at several gap thresholds, their length
distribution on train and test users, the hazard of leaving after a liked vs a disliked item and by position; the
leaving model fitted on train users (RecSimEnv-v1's), replayed on test users' logs and run inside the env under a
log-replay policy, against the test users' real sessions (KS distance); and episode lengths of v0 and v1 under other
policies (a user must tire under any policy). One run.

Run: ``python -m benchmarks.sessions`` -> ``benchmarks/results/sessions.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.report import write_report

__all__ = ["main"]


def summary(lengths: np.ndarray) -> dict[str, float]:
    q = np.percentile(lengths, [25, 50, 75, 90]) if len(lengths) else [np.nan] * 4
    return {"sessions": int(len(lengths)), "mean": float(lengths.mean()) if len(lengths) else float("nan"),
            "p25": float(q[0]), "median": float(q[1]), "p75": float(q[2]), "p90": float(q[3]),
            "single": float((lengths == 1).mean()) if len(lengths) else float("nan")}


SLATE = 10
MIN_CUT = 5  # env episodes start after at least this many logged interactions (the env's min_history)


def env_replay(ds, gap: float, repeats: int) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """RecSimEnv-v1 under the log-replay policy from the test users' real session starts (module docstring): the
    summary rows, and the real and simulated lengths."""
    import gymnasium as gym

    import recsim_env  # noqa: F401
    from agents.heuristics import LogReplayPolicy
    from recsim_env.sessions import ks_distance, sessions

    sid, idx = sessions(ds, gap, ds.users("test"))
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sid)) + 1])
    lengths_real = np.bincount(sid)
    env = gym.make("RecSimEnv-v1", feedback_mode="feed", slate_size=SLATE, max_episode_steps=1_000)
    policy = LogReplayPolicy(env)
    real, sim = [], []
    for n, s in enumerate(starts):
        u = int(ds.inter_user[idx[s]])
        cut = int(idx[s] - ds.user_ptr[u])
        if cut < MIN_CUT:
            continue
        for k in range(repeats):
            obs, info = env.reset(seed=1_000 * n + k, options={"user_index": u, "history_cut": cut})
            played = 0
            while True:
                obs, _, term, trunc, info = env.step(policy.act(obs, info))
                played += int(info["feedback"]["played"].sum())
                if term or trunc:
                    break
            sim.append(played)
            real.append(lengths_real[sid[s]])
    real, sim = np.array(real), np.array(sim)
    return {f"real, test sessions after >= {MIN_CUT} items": summary(real[::repeats]),
            "RecSimEnv-v1, log-replay policy": {**summary(sim), "ks": ks_distance(sim, real[::repeats])}}, \
        {"real": real[::repeats], "env": sim}


def policy_lengths(episodes: int) -> dict[tuple[str, str, str], dict[str, float]]:
    """Episode lengths (steps, items played) of v0 and v1 under random and popular policies, both modes."""
    import gymnasium as gym

    import recsim_env  # noqa: F401
    from agents.heuristics import PopularityPolicy, RandomPolicy

    out = {}
    for version in ("RecSimEnv-v0", "RecSimEnv-v1"):
        for mode in ("feed", "page"):
            env = gym.make(version, feedback_mode=mode, user_split="test")
            for name, policy in (("random", RandomPolicy(env)), ("popular", PopularityPolicy(env))):
                steps, items, truncated = [], [], []
                for ep in range(episodes):
                    obs, info = env.reset(seed=ep)
                    t = played = 0
                    while True:
                        obs, _, term, trunc, info = env.step(policy.act(obs, info))
                        t += 1
                        played += int(info["feedback"]["played"].sum())
                        if term or trunc:
                            break
                    steps.append(t), items.append(played), truncated.append(trunc and not term)
                out[version, mode, name] = {"steps": float(np.mean(steps)), "items": float(np.mean(items)),
                                            "truncated": float(np.mean(truncated))}
    return out


def main(argv: list[str] | None = None) -> int:
    from recsim_env.data import load_dataset
    from recsim_env.sessions import leave_hazard, session_lengths

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--gaps", default="1800,3600,21600", help="gap thresholds in seconds (comma-separated)")
    p.add_argument("--repeats", type=int, default=5, help="env replays per real session start")
    p.add_argument("--episodes", type=int, default=30, help="episodes per (env version, mode, policy) row")
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
    from recsim_env.sessions import FEATURES, LeaveModel, ks_distance

    gap = gaps[len(gaps) // 2]
    real = lengths_at[(gap, "test")]
    models = {"constant hazard (geometric)": LeaveModel.fit(ds, gap, ds.users("train"), constant=True),
              "fitted (RecSimEnv-v1's)": LeaveModel.fit(ds, gap, ds.users("train"))}
    replays = {name: m.replay(ds, ds.users("test"), np.random.default_rng(0), repeats=args.repeats) for name, m in models.items()}
    fits = {name: {"weights": m.weights.tolist(), "ks": ks_distance(replays[name], real), **summary(replays[name])}
            for name, m in models.items()}
    env_runs, er_lengths = env_replay(ds, gap, args.repeats)
    policies = policy_lengths(args.episodes)
    cmd = " ".join(["python -m benchmarks.sessions", *(argv if argv is not None else sys.argv[1:])])
    md = [f"# Sessions in the logs ({ds.name})", "", f"Command: `{cmd}`. A session: one user's consecutive interactions "
          "with every gap below the threshold. One run.", "",
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
           f"probability; {args.repeats} replays per start), against the test users' real sessions. Features chosen on "
           "validation users (position alone, with a 2- or 3-class mixture, replayed validation sessions worse than "
           "adding tenure and the first-item flag):", "",
           "| sessions | mean length | median | p90 | KS distance to real | weights [" + ", ".join(FEATURES) + "] |",
           "| --- | ---: | ---: | ---: | ---: | --- |",
           f"| real, test users | {real.mean():.1f} | {np.median(real):g} | {np.percentile(real, 90):g} | - | - |"]
    md += [f"| {n} | {f['mean']:.1f} | {f['median']:g} | {f['p90']:g} | {f['ks']:.3f} | "
           f"{', '.join(f'{w:+.2f}' for w in f['weights'])} |" for n, f in fits.items()]
    er = env_runs
    md += ["", f"Inside the env: RecSimEnv-v1 (feed mode, slate {SLATE}, data-fitted simulator) started at each real session "
           f"start of the test users that has >= {MIN_CUT} earlier interactions (`reset(options={{'user_index', 'history_cut'}})`), "
           f"the log-replay policy showing the user's own next logged items (popular ones once the log runs out), "
           f"{args.repeats} seeds per start; session length = items played before the user left (the simulator, not the "
           "log, says liked or disliked). Real: the same sessions.", "",
           "| sessions | n | mean length | median | p90 | KS distance to real |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    md += [f"| {name} | {v['sessions']:,} | {v['mean']:.1f} | {v['median']:g} | {v['p90']:g} | "
           + ("-" if name.startswith("real") else f"{v['ks']:.3f}") + " |" for name, v in er.items()]
    md += ["", f"Episode lengths under other policies ({args.episodes} test-user episodes each, TimeLimit 100 steps, "
           "slate 10, data-fitted simulator): steps and items played per episode.", "",
           "| env | mode | policy | steps | items played | episodes truncated at 100 steps |",
           "| --- | --- | --- | ---: | ---: | ---: |"]
    md += [f"| {k[0]} | {k[1]} | {k[2]} | {v['steps']:.1f} | {v['items']:.1f} | {v['truncated']:.0%} |" for k, v in policies.items()]
    md += ["", "Caveat: MovieLens users rate films they saw earlier, in bursts on the site; a rating session is the nearest "
           "logged analogue of a viewing session, not the same thing. Hazards by position fall partly because long "
           "sessions belong to a few heavy raters; the model's tenure term (users early in their log, sign-up bursts, stay "
           "longer) covers part of that, no per-user term is fitted."]
    curves = {"real, train users": lengths_at[(gap, "train")], "real, test users": real,
              **{f"replayed: {n}": r for n, r in replays.items()},
              f"real, test sessions after >= {MIN_CUT} items": er_lengths["real"],
              "RecSimEnv-v1, log-replay policy": er_lengths["env"]}
    results = {"summary": rows, "hazard": hazards, "leave_models": fits, "env_replay": env_runs,
               "policies": {" / ".join(k): v for k, v in policies.items()}, "command": cmd}
    print("\n".join(md))
    write_report(args.out, "\n".join(md) + "\n", results,
                 lambda _, path: plot_lengths(curves, f"{ds.name} sessions, gap < {gap / 3600:g} h", path))
    return 0


def plot_lengths(curves: dict[str, np.ndarray], title: str, path: Path) -> None:
    """Survival curves (share of sessions at least this long) of each set of session lengths, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, lengths in curves.items():
        x = np.sort(lengths)
        ax.plot(x, 1 - np.arange(len(x)) / len(x), label=label, ls="-" if label.startswith("real") else "--",
                lw=2.2 if "RecSimEnv" in label or "after" in label else 1.2)
    ax.set(xscale="log", yscale="log", xlabel="session length (interactions)", ylabel="share of sessions >= length",
           title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

if __name__ == "__main__":
    sys.exit(main())
