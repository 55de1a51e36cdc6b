"""Training the decision heads of the LLM user (:mod:`simulators.llm.heads`) on train users' real behaviour.

Examples (``head_examples``): per user, ``cuts_per_user`` cut points (the last possible one, where the user's last
``positives`` real items are held out, and random earlier ones); the memory is the real history before the
cut, and the items are the user's next ``positives`` real interactions (label: real; their rating or watched
fraction; a data-derived reason label where the real reaction was a fast skip), ``uniform_negatives`` items the
user never interacted with drawn uniformly (Agent4Rec's negatives) and ``popular_negatives`` drawn by train
popularity (distractors that popularity alone does not reject). Every train-user statistic a head reads leaves
that user out (:func:`~recsim_env.features.item_stats_without`, co-occurrence without the user's own pairs).

Losses: binary cross-entropy of the interest logit on real vs uniform items (1:1, so that P = 0.5 is the
Agent4Rec threshold); a listwise loss (each real item against all of its row's negatives, the choice among
shown options); cross-entropy of the value level on real items and of the reason class on labelled skips.

Selection: every (pool, hidden width) candidate is trained on train users and scored on valid users (like/dislike
ROC AUC plus the choice log-likelihood); the best is kept. Each candidate's result is saved as it finishes, so
running the same command again resumes. Test users are never read here.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recsim_env.data import Dataset
from simulators.base import SimulationRequest, config_from_dict

__all__ = ["SimulatorHeadsConfig", "head_examples", "train_heads"]


@dataclass(frozen=True)
class SimulatorHeadsConfig:
    """Configuration of ``recsim train-simulator heads`` (:func:`train_heads`).

    model / adapter / dtype: the language model whose item reading the heads use (float32 by default: bf16 is
        emulated, ~400x slower, on CPUs without avx512_bf16).
    inputs: ("llm", "cues") the full heads; ("llm",) the ablation without collaborative numbers; ("cues",) a model
        of exactly the numbers the LLM heads are given, without the language model.
    pools / hidden: candidates chosen on valid users (read-out layer; hidden width, 0 = linear heads).
    cuts_per_user, positives, uniform_negatives, popular_negatives: the examples (module docstring).
    memory / min_history: memory items kept; least history before a cut.
    steps / lr / weight_decay: full-batch AdamW steps per candidate, validated every ``eval_every`` steps (best kept).
    history_in_prompt: memory items of the prompts the simulator writes reasons from.
    seed: seed of the example sampling and the initialisation.
    """

    model: str = "smollm2-135m"
    adapter: str | None = None
    dtype: str = "float32"
    inputs: tuple[str, ...] = ("llm", "cues")
    pools: tuple[str, ...] = ("final", "mid")
    hidden: tuple[int, ...] = (0, 64)
    cuts_per_user: int = 8
    positives: int = 5
    uniform_negatives: int = 5
    popular_negatives: int = 5
    memory: int = 30
    min_history: int = 5
    steps: int = 300
    eval_every: int = 25
    lr: float = 1e-2
    weight_decay: float = 1e-2
    history_in_prompt: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.inputs or set(self.inputs) - {"llm", "cues"}:
            raise ValueError(f"inputs must be a non-empty subset of ('llm', 'cues'), got {self.inputs}.")
        from simulators.llm.heads import POOLS

        if not self.pools or set(self.pools) - set(POOLS):
            raise ValueError(f"pools must be a non-empty subset of {POOLS}, got {self.pools}.")
        if not self.hidden or min(self.hidden) < 0:
            raise ValueError(f"hidden must be a non-empty tuple of widths >= 0, got {self.hidden}.")
        if min(self.cuts_per_user, self.positives, self.uniform_negatives, self.steps, self.eval_every, self.memory) < 1:
            raise ValueError("cuts_per_user, positives, uniform_negatives, steps, eval_every and memory must be >= 1.")
        if self.popular_negatives < 0 or self.min_history < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("popular_negatives >= 0, min_history >= 1, lr > 0 and weight_decay >= 0 are required.")

    @classmethod
    def from_dict(cls, values: dict) -> "SimulatorHeadsConfig":
        return config_from_dict(cls, values)


def head_examples(dataset: Dataset, split: str, config: SimulatorHeadsConfig, scenes=None) -> dict:
    """Rows of (memory, items) with labels for ``split`` users (module docstring); seeded.

    Returns ``requests`` (feed requests whose slate is the row's items), ``real`` (N, M) bool, ``value`` (N, M) value
    level of real items (-1 elsewhere), ``reason`` (N, M) reason class of labelled real skips (-1 elsewhere) and
    ``uniform`` (N, M) bool marking the uniform negatives. ``scenes``: the :class:`SceneBuilder` that maps real
    reactions to value levels (built from the dataset when None).
    """
    from recsim_env.features import item_features
    from simulators.llm.prompts import SceneBuilder
    from simulators.training.labels import DataLabeller
    from simulators.training.scenes import FeedScene

    c = config
    rng = np.random.default_rng([c.seed, {"train": 0, "valid": 1, "test": 2}[split]])
    p_pop = item_features(dataset).count + 1.0
    p_pop /= p_pop.sum()
    if scenes is None:
        from simulators.llm.prompts import ChatFormat

        scenes = SceneBuilder(dataset, ChatFormat(None))
    labeller = DataLabeller(dataset)
    requests, real, value, reason, uniform, feed = [], [], [], [], [], []
    m = c.positives + c.uniform_negatives + c.popular_negatives
    for u in dataset.users(split):
        h = dataset.history(u)
        n = h.stop - h.start
        cuts = np.arange(c.min_history, n - c.positives + 1)
        if not len(cuts):
            continue
        seen = np.zeros(dataset.n_items, bool)
        seen[dataset.inter_item[h]] = True
        unseen = np.flatnonzero(~seen)
        if len(unseen) < c.uniform_negatives + c.popular_negatives:
            continue
        # the last possible cut (the user's last real items held out, as Agent4Rec's protocol does) and random ones
        picked = np.unique(np.append(rng.choice(cuts[:-1], min(c.cuts_per_user - 1, len(cuts) - 1), replace=False), cuts[-1]))
        for cut in picked:
            idx = np.arange(h.start + cut, h.start + cut + c.positives)
            uni = rng.choice(unseen, c.uniform_negatives, replace=False)
            rest = np.setdiff1d(unseen, uni)
            pop = rng.choice(rest, c.popular_negatives, replace=False, p=p_pop[rest] / p_pop[rest].sum()) if c.popular_negatives else []
            items = np.concatenate([dataset.inter_item[idx], uni, pop]).astype(np.int64)
            req = SimulationRequest.from_history(dataset, int(u), int(cut), items, "feed", c.memory)
            ratio = dataset.inter_watch_ratio[idx]
            rating = dataset.inter_rating[idx] if dataset.has_ratings else np.full(len(idx), np.nan)
            v = np.full(m, -1)
            v[: c.positives] = [scenes.value_answer(r, g) if not np.isnan(r) else -1 for r, g in zip(ratio, rating)]
            requests.append(req)
            real.append(np.arange(m) < c.positives)
            uniform.append((np.arange(m) >= c.positives) & (np.arange(m) < c.positives + c.uniform_negatives))
            value.append(v)
            pos_req = SimulationRequest.from_history(dataset, int(u), int(cut), dataset.inter_item[idx], "feed", c.memory)
            feed.append(FeedScene(int(u), int(cut), pos_req, ratio, ratio < dataset.thresholds.skip_below, rating))
    for labels in labeller.label(feed):
        row = np.full(m, -1)
        row[: c.positives] = [lab.index if lab is not None else -1 for lab in labels]
        reason.append(row)
    return {"requests": requests, "real": np.array(real), "value": np.array(value), "reason": np.array(reason),
            "uniform": np.array(uniform)}


def _auc(scores: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(scores)
    n_pos, n_neg = truth.sum(), (~truth).sum()
    return float((r[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _losses(heads, x, ex, choice_weight: float = 1.0):
    import torch

    logit, rating, reason = heads.forward(x, standardised=True)
    real, uni = ex["real_t"], ex["uniform_t"]
    both = real | uni
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit[both], real[both].float())
    neg = logit.masked_fill(real, -torch.inf)  # (N, M): the row's negatives
    lse = torch.logsumexp(torch.cat([logit[:, :, None], neg[:, None, :].expand(-1, logit.shape[1], -1)], -1), -1)
    listwise = (lse - logit)[real].mean()
    v = ex["value_t"]
    value = torch.nn.functional.cross_entropy(rating[v >= 0], v[v >= 0])
    r = ex["reason_t"]
    rloss = torch.nn.functional.cross_entropy(reason[r >= 0], r[r >= 0]) if (r >= 0).any() else logit.sum() * 0
    return bce + choice_weight * listwise + value + rloss, {"bce": bce.item(), "listwise": listwise.item(),
                                                            "value": value.item(), "reason": rloss.item()}


def _tensors(ex: dict, x: np.ndarray) -> tuple:
    import torch

    t = {k + "_t": torch.as_tensor(ex[k]) for k in ("real", "uniform", "value", "reason")}
    return torch.as_tensor(x), t


def _valid_score(heads, x, ex) -> dict:
    """Valid users: like/dislike AUC (real vs uniform) and choice log-likelihood (real vs the row's negatives)."""
    import torch

    with torch.inference_mode():
        logit = heads.forward(x, standardised=True)[0].double().numpy()
    real, uni = ex["real"], ex["uniform"]
    both = real | uni
    auc = _auc(logit[both], real[both])
    neg = np.where(real, -np.inf, logit)
    ll = []
    for j in range(real.shape[1]):
        if real[:, j].all():
            z = np.concatenate([logit[:, j : j + 1], neg], axis=1)
            ll.append(logit[:, j] - np.logaddexp.reduce(z, axis=1))
    return {"like_auc": auc, "choice_loglik": float(np.mean(ll)), "score": auc + 0.1 * float(np.mean(ll))}


def train_heads(config: SimulatorHeadsConfig, out: str | Path, dataset: str | Dataset = "ml-100k",
                command: str = "", progress: bool = True) -> dict:
    """Train decision heads (module docstring) and write them to ``out`` with ``card.json`` / ``CARD.md``."""
    import torch
    from tqdm.auto import tqdm

    from recsim_env.data import load_dataset
    from simulators.fitted import FittedUserModel
    from simulators.llm import LLMUserSimulator
    from simulators.llm.heads import PROMPT_VERSION, DecisionHeads, HeadSpec, adapter_hash, cue_features, item_states, llm_features

    t0 = time.time()
    c = config
    ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sim = LLMUserSimulator(model=c.model, adapter=c.adapter, dtype=c.dtype, dataset=ds, history_in_prompt=c.history_in_prompt,
                           answer_format="letters")
    fitted = FittedUserModel.fit(ds)
    data = {split: head_examples(ds, split, c, sim.scenes) for split in ("train", "valid")}
    for split, ex in data.items():
        if not ex["requests"]:
            raise ValueError(f"No {split} user of {ds.name!r} has min_history={c.min_history} + positives={c.positives} "
                             f"interactions; lower them or use a larger dataset.")
    states = item_states(sim, progress=progress) if "llm" in c.inputs else None
    t_states = time.time() - t0
    items = {s: np.stack([r.slate for r in ex["requests"]]) for s, ex in data.items()}
    cues = {s: cue_features(fitted, ex["requests"], items[s]) for s, ex in data.items()} if "cues" in c.inputs else None
    sc = sim.scenes
    skip_value = next(j for j in range(sc.n_values) if sc.value_to_ratio(j, 0.5)[0] >= ds.thresholds.skip_below)
    progress_file = out / "selection.json"
    done = json.loads(progress_file.read_text()) if progress_file.is_file() else {}
    grid = [(p, h) for p in (c.pools if "llm" in c.inputs else ("final",)) for h in c.hidden]
    best = None
    bar = tqdm(total=len(grid) * c.steps, desc="heads", disable=not progress)
    for pool, hidden in grid:
        name = f"{pool}-h{hidden}" if "llm" in c.inputs else f"cues-h{hidden}"
        xs = {}
        for s, ex in data.items():
            parts = []
            if states is not None:
                parts.append(llm_features(states, pool, ex["requests"], items[s], fitted.decay, c.memory))
            if cues is not None:
                parts.append(cues[s])
            xs[s] = np.concatenate(parts, -1)
        flat = xs["train"].reshape(-1, xs["train"].shape[-1])
        spec = HeadSpec(
            model=c.model, adapter=c.adapter, adapter_hash=adapter_hash(c.adapter), prompt_version=PROMPT_VERSION,
            history_in_prompt=c.history_in_prompt, inputs=tuple(c.inputs), pool=pool, hidden=hidden,
            n_values=sc.n_values, n_reasons=len(sc.taxonomy), skip_value=skip_value, decay=float(fitted.decay),
            feature_dim=flat.shape[1], mean=tuple(map(float, flat.mean(0))), std=tuple(map(float, flat.std(0) + 1e-6)),
        )
        ckpt = out / "candidates" / name
        if name in done and (ckpt / "heads.json").is_file():
            heads = DecisionHeads.load(ckpt)
            bar.update(c.steps)
        else:
            heads = DecisionHeads(spec, seed=c.seed)
            x, t = _tensors(data["train"], xs["train"])
            x, xv = heads.standardise(x), heads.standardise(torch.as_tensor(xs["valid"]))
            opt = torch.optim.AdamW(heads.net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
            top, curve = None, []
            for step in range(1, c.steps + 1):
                opt.zero_grad()
                loss, parts = _losses(heads, x, t)
                loss.backward()
                opt.step()
                bar.update()
                if step % c.eval_every == 0 or step == c.steps:
                    v = _valid_score(heads, xv, data["valid"])
                    curve.append({"step": step, "train_loss": float(loss.item()), **parts, **v})
                    if top is None or v["score"] > top[0]["score"]:
                        top = (v, step, {k: p.detach().clone() for k, p in heads.net.state_dict().items()})
            heads.net.load_state_dict(top[2])
            heads.save(ckpt)
            done[name] = {"pool": pool, "hidden": hidden, "best_step": top[1], **top[0], "curve": curve}
            progress_file.write_text(json.dumps(done, indent=1) + "\n")
        if best is None or done[name]["score"] > done[best[0]]["score"]:
            best = (name, heads)
    bar.close()
    name, heads = best
    card = {
        "kind": "heads", "dataset": ds.name, "command": command, "config": asdict(c), "chosen": name,
        "selection": {k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in done.items()},
        "data": {s: {"rows": len(ex["requests"]), "items": int(ex["real"].size), "users": len({r.user for r in ex["requests"]}),
                     "real": int(ex["real"].sum()), "labelled_skips": int((ex["reason"] >= 0).sum())} for s, ex in data.items()},
        "seconds": {"item_states": round(t_states, 1), "total": round(time.time() - t0, 1)},
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
    }
    heads.save(out, card)
    (out / "CARD.md").write_text(_card_markdown(card))
    return card


def _card_markdown(card: dict) -> str:
    lines = [f"# Decision heads ({card['dataset']}, inputs {', '.join(card['config']['inputs'])})", "",
             f"Command: `{card['command']}`", "", f"Chosen on valid users: **{card['chosen']}**.", "",
             "| candidate | like/dislike AUC (valid) | choice log-lik (valid) | best step |", "| --- | --- | --- | --- |"]
    lines += [f"| {k} | {v['like_auc']:.3f} | {v['choice_loglik']:.3f} | {v['best_step']} |" for k, v in card["selection"].items()]
    lines += ["", "| split | rows | items | users | real items | labelled skips |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {s} | {d['rows']} | {d['items']} | {d['users']} | {d['real']} | {d['labelled_skips']} |" for s, d in card["data"].items()]
    lines += ["", f"Time: {card['seconds']['total']} s (item states {card['seconds']['item_states']} s) on {card['hardware']}.",
              "", "Fidelity on test users: `benchmarks/results/fidelity.md` (rows named after this directory)."]
    return "\n".join(lines) + "\n"
