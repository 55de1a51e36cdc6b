"""Episodes of any policy logged as a Minari dataset, with the propensities of the shown slates (offline RL and
off-policy evaluation).

Layout of each episode (T steps; Minari keeps T + 1 observations and infos, index 0 from ``reset``):

* ``observations``: the env's Dict observation, one array per key, shape (T + 1, ...);
* ``actions`` (T, K); ``rewards``, ``terminations``, ``truncations`` (T,);
* ``infos["log_propensity"]`` (T + 1,): log P(slate shown at step t | observation t) under the logging policy at index
  t + 1 (the info that step returned), NaN at index 0 and where the policy cannot give one (``log_propensity`` missing);
  ``infos["feedback.<key>"]`` (T + 1, K): the per-item feedback of ``info["feedback"]`` (item_id, position, clicked,
  skipped, played, rated, watch_ratio, rating) and ``feedback.reason_class`` as an int code (-1: none) into the
  vocabulary in the dataset's description and in ``recsim.json`` beside the data; ``infos["reward_terms.<term>"]``
  (T + 1,); infos are one flat dict (the same keys in both formats);
  ``user_index``, ``simulator_errors`` (T + 1,); ``choice_probs`` (page) or ``skip_probs`` (feed) (T + 1, K(+1)).
  Reasons in words (strings do not go into Minari's arrays) are in ``recsim.json`` by episode, step and position.

Both of Minari's formats work (``data_format="hdf5"`` or ``"arrow"``); ``dataset.recover_environment()`` makes the env
again from the spec stored with the data (an env made by ``gym.make`` with plain arguments).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agents.base import PolicyLike, as_policy

__all__ = ["record_dataset", "reason_texts"]

TEXT_FIELDS = ("reason_class", "reason_text")


def _stack(rows: list[dict], scalars_as_lists: bool = False) -> dict:
    """A list of (nested) dicts of arrays -> one dict of stacked arrays. ``scalars_as_lists``: per-step scalars stay a
    list (Minari 0.5.4's arrow storage writes a 1-d info array with an empty shape it cannot read back; a list it can)."""
    out = {}
    for k in rows[0]:
        if isinstance(rows[0][k], dict):
            out[k] = _stack([r[k] for r in rows], scalars_as_lists)
        elif scalars_as_lists and np.ndim(rows[0][k]) == 0:
            out[k] = [r[k].item() if hasattr(r[k], "item") else r[k] for r in rows]
        else:
            out[k] = np.stack([np.asarray(r[k]) for r in rows])
    return out


def _numeric_info(info: dict[str, Any], log_propensity: float, vocab: dict[str, int]) -> dict[str, Any]:
    """The info of one step, flat (Minari 0.5.4's arrow storage does not read nested info dicts back), strings removed
    (reason classes as codes), the propensity added."""
    fb = {k: np.asarray(v) for k, v in info["feedback"].items() if k not in TEXT_FIELDS}
    fb["reason_class"] = np.array([vocab.setdefault(c, len(vocab)) if c else -1 for c in info["feedback"]["reason_class"]],
                                  np.int16)
    out = {**{f"feedback.{k}": v for k, v in fb.items()},
           **{f"reward_terms.{k}": np.float64(v) for k, v in info["reward_terms"].items()},
           "user_index": np.int64(info["user_index"]), "simulator_errors": np.int64(info["simulator_errors"]),
           "log_propensity": np.float64(log_propensity)}
    for key in ("choice_probs", "skip_probs"):
        if np.size(info[key]):
            out[key] = np.asarray(info[key], np.float64)
    return out


def record_dataset(env: gym.Env, policy: PolicyLike, episodes: int, dataset_id: str, seed: int = 0,
                   data_format: str = "hdf5", algorithm_name: str | None = None, description: str | None = None,
                   progress: bool = True):
    """Roll ``policy`` out for ``episodes`` episodes (episode i reset with ``seed + i``) and write them as the Minari
    dataset ``dataset_id`` (under ``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``). Returns the
    ``MinariDataset``. The policy's ``log_propensity(obs, info, slate)``, where it has one, is logged per step."""
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError as err:
        raise ImportError("Recording needs minari and h5py: pip install 'recsim-env[minari]' "
                          "(or minari==0.5.4 h5py).") from err
    if data_format not in ("hdf5", "arrow"):
        raise ValueError(f"data_format must be 'hdf5' or 'arrow', got {data_format!r}.")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}.")
    if dataset_id in minari.list_local_datasets():
        raise FileExistsError(f"Minari dataset {dataset_id!r} exists already: pick another id or delete it with "
                              f"minari.delete_dataset({dataset_id!r}).")
    act = as_policy(policy)
    propensity = getattr(policy, "log_propensity", None)
    vocab: dict[str, int] = {}
    buffers, texts = [], []
    for ep in tqdm(range(episodes), desc=f"recording {dataset_id}", disable=not progress):
        obs, info = env.reset(seed=seed + ep)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        infos, words = [_numeric_info(info, np.nan, vocab)], []
        while True:
            slate = np.asarray(act(obs, info))
            logp = float(propensity(obs, info, slate)) if propensity is not None else np.nan
            obs, reward, term, trunc, info = env.step(slate)
            observations.append(obs), actions.append(slate), rewards.append(float(reward))
            terms.append(bool(term)), truncs.append(bool(trunc))
            infos.append(_numeric_info(info, logp, vocab))
            words.append([str(t) for t in info["feedback"]["reason_text"]])
            if term or trunc:
                break
        buffers.append(EpisodeBuffer(id=ep, seed=seed + ep, observations=_stack(observations),
                                     actions=np.stack(actions).astype(np.int64), rewards=rewards, terminations=terms,
                                     truncations=truncs, infos=_stack(infos, scalars_as_lists=True)))
        texts.append(words)
    classes = sorted(vocab, key=vocab.get)
    name = algorithm_name or type(policy).__name__
    about = (f"RecSimEnv episodes logged with the policy {name}; {episodes} episodes from seed {seed}. "
             f"infos['log_propensity'][t + 1] is log P(action t | observation t) under the logging policy (NaN where it "
             f"gives none); infos['feedback.reason_class'] codes index {classes} (-1: none). Layout: agents/record.py.")
    dataset = minari.create_dataset_from_buffers(
        dataset_id, buffers, env=env, eval_env=env.spec, algorithm_name=name, author="RecSimEnv (recsim record)",
        author_email="none", code_permalink="agents/record.py", description=(description + "\n\n" if description else "") + about,
        data_format=data_format)
    side = Path(dataset.spec.data_path).parent / "recsim.json"
    side.write_text(json.dumps({"reason_classes": classes, "reason_text": texts, "seed": seed, "policy": name}))
    return dataset


def reason_texts(dataset) -> list[list[list[str]]]:
    """The reasons in words of a dataset written by :func:`record_dataset`: [episode][step][position] ("" where none)."""
    side = Path(dataset.spec.data_path).parent / "recsim.json"
    if not side.exists():
        raise FileNotFoundError(f"{side} is missing: the dataset was not written by agents.record.record_dataset.")
    return json.loads(side.read_text())["reason_text"]
