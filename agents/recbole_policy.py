"""RecBole backbones as recommender policies: trained on the env's train users, acting on any user state.

``RecBolePolicy.train("SASRec", dataset="ml-100k")`` writes the train users' interactions as a
RecBole atomic file, trains the model with RecBole's own ``Config`` (the model's default
hyper-parameters, plus :class:`RecBoleConfig`), prints RecBole's test Recall@10 / NDCG@10 and
caches the weights (``$RECSIM_CACHE/recbole/<model>-<key>/``; a second call with the same data
and config loads them). It uses ``recbole.config/data/utils`` only (``quick_start`` imports ray).

Acting, for the current observation:

* sequential models (SASRec, GRU4Rec, NARM, any ``SequentialRecommender``) read the user's memory
  (``obs["history_items"]``, oldest first) as the item sequence, so they follow the session;
* general models (BPR, LightGCN, ...) use the learned user embedding when the user was among the
  training users, else (valid/test users) a fold-in: the mean of the model's item embeddings over
  the memory items, scored by dot product (the model's own scoring for BPR/LightGCN-style models).

Catalog mode returns the top-K items never consumed; candidates mode the top-K candidates. Items
RecBole never saw (no train interaction) rank after every scored item.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsim_env.data import Dataset, cache_dir, load_dataset

__all__ = ["RecBoleConfig", "RecBolePolicy", "import_recbole"]


def import_recbole():
    """Import RecBole's config/data/utils with two compatibility shims for RecBole 1.2.1:
    numpy 2 removed ``np.float_`` & co. (its Config uses them), and scipy >= 1.15 removed
    ``dok_matrix._update`` (its graph models, e.g. LightGCN, build the adjacency with it)."""
    import scipy.sparse as sp

    for old, new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))
    if not hasattr(sp.dok_matrix, "_update") and hasattr(sp.dok_matrix((1, 1)), "_dict"):
        sp.dok_matrix._update = lambda self, data: self._dict.update(data)
    try:
        import recbole.config
        import recbole.data
        import recbole.utils
    except ImportError as err:
        raise ImportError(
            f"RecBole backbones need recbole and its runtime deps ({err}). Install with "
            f"`pip install --no-deps recbole==1.2.1` and `pip install -e '.[recbole]'` (the Makefile does both)."
        ) from err
    return recbole


@dataclass
class RecBoleConfig:
    """Training settings; anything else RecBole accepts goes in ``overrides`` (e.g. ``{"hidden_size": 32}``).

    epochs: upper bound; RecBole stops early after ``stopping_step`` evaluations without a better
        valid NDCG@10.
    max_seq_len: sequence length of sequential models (the env's default memory holds 30 items).
    positives_only: train on the interactions that were not fast skips (watch ratio >= the
        dataset's ``skip_below``; MovieLens: rating >= 3), i.e. what the env counts as a click, and
        feed sequential models only the memory items that were not skipped. False: every interaction.
    """

    positives_only: bool = True
    epochs: int = 20
    stopping_step: int = 3
    train_batch_size: int = 256  # RecBole says 2048; smaller batches learn more per epoch on a CPU
    max_seq_len: int = 30
    seed: int = 2026
    overrides: dict[str, Any] = field(default_factory=dict)

    def recbole_params(self, sequential: bool) -> dict[str, Any]:
        params = {
            "epochs": self.epochs, "stopping_step": self.stopping_step, "train_batch_size": self.train_batch_size,
            "seed": self.seed, "reproducibility": True, "use_gpu": False, "metrics": ["Recall", "NDCG"],
            "topk": [10], "valid_metric": "NDCG@10", "state": "WARNING",
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        }
        if sequential:  # RecBole's standard sequential protocol: leave-one-out by time
            params |= {"MAX_ITEM_LIST_LENGTH": self.max_seq_len,
                       "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}}
        return params | self.overrides


def _is_sequential(model_name: str) -> bool:
    import_recbole()
    from recbole.model.abstract_recommender import SequentialRecommender
    from recbole.utils import get_model

    return issubclass(get_model(model_name), SequentialRecommender)


def _model_defaults(model_name: str) -> dict[str, Any]:
    """The model's own RecBole hyper-parameter file."""
    import yaml

    path = Path(import_recbole().__file__).parent / "properties" / "model" / f"{model_name}.yaml"
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def _write_train_inter(dataset: Dataset, path: Path, positives_only: bool) -> int:
    """The train users' interactions as a RecBole atomic ``.inter`` file (env ids as tokens); returns how many."""
    train = np.isin(dataset.inter_user, dataset.users("train"))
    if positives_only:  # NaN watch ratio (unknown) counts as positive
        train &= ~(dataset.inter_watch_ratio < dataset.thresholds.skip_below)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for u, i, r, t in zip(dataset.inter_user[train], dataset.inter_item[train], dataset.inter_rating[train], dataset.inter_time[train]):
            f.write(f"{u}\t{i}\t{1.0 if np.isnan(r) else r:g}\t{t:.0f}\n")
    tmp.replace(path)
    return int(train.sum())


@contextlib.contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class RecBolePolicy:
    """A trained RecBole model acting in ``RecSimEnv`` (see the module docstring)."""

    def __init__(
        self, model, recbole_dataset, dataset: Dataset, name: str, metrics: dict[str, float], slate_size: int = 10,
        positives_only: bool = False,
    ) -> None:
        self.model = model.eval()
        self.name = name
        self.dataset = dataset
        self.metrics = metrics
        self.k = slate_size
        self.positives_only = positives_only  # trained on non-skipped items: read only those from the memory
        self.sequential = hasattr(model, "ITEM_SEQ")
        # env item index <-> RecBole internal id (tokens are the env indices written by _write_train_inter)
        field_ = recbole_dataset.iid_field
        known = recbole_dataset.field2token_id[field_]
        self.env_to_rb = np.zeros(dataset.n_items, dtype=np.int64)  # 0 = RecBole's padding id: not scorable
        for token, rb in known.items():
            if token != "[PAD]":
                self.env_to_rb[int(token)] = rb
        self.user_to_rb = {int(t): rb for t, rb in recbole_dataset.field2token_id[recbole_dataset.uid_field].items() if t != "[PAD]"}

    # -- training -------------------------------------------------------------------------------

    @classmethod
    def train(
        cls, model: str, dataset: str | os.PathLike | Dataset = "ml-100k", config: RecBoleConfig | None = None,
        cache: bool = True, progress: bool = True, verbose: bool = True,
    ) -> "RecBolePolicy":
        """Train (or load from the cache) RecBole ``model`` on the train users of ``dataset``."""
        recbole = import_recbole()
        import torch
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, get_trainer, init_seed

        try:
            get_model(model)
        except (ValueError, ImportError) as err:  # an unknown name makes RecBole try its optional exlib models
            raise ValueError(f"{model!r} is not a RecBole model name (e.g. BPR, LightGCN, SASRec, GRU4Rec, NARM): {err}") from err
        ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
        config = config or RecBoleConfig()
        params = config.recbole_params(_is_sequential(model))
        if params.get("loss_type", _model_defaults(model).get("loss_type")) == "CE":
            params.setdefault("train_neg_sample_args", None)  # RecBole rejects negative sampling with CE
        train_users = ds.users("train")
        key = hashlib.sha1(json.dumps(
            [model, recbole.__version__, params, config.positives_only, str(ds.path), len(ds.inter_user), train_users.tolist()], sort_keys=True, default=str
        ).encode()).hexdigest()[:12]
        home = cache_dir() / "recbole" / f"{model}-{key}"
        name = "train"
        n_inter = _write_train_inter(ds, home / "data" / name / f"{name}.inter", config.positives_only)
        params |= {"data_path": str(home / "data"), "checkpoint_dir": str(home / "checkpoints"), "show_progress": progress}
        rb_config = Config(model=model, dataset=name, config_dict=params)
        init_seed(rb_config["seed"], rb_config["reproducibility"])
        rb_data = create_dataset(rb_config)
        train_data, valid_data, test_data = data_preparation(rb_config, rb_data)
        net = get_model(model)(rb_config, train_data._dataset).to(rb_config["device"])
        weights, card = home / "model.pt", home / "card.json"
        if cache and weights.exists() and card.exists():
            net.load_state_dict(torch.load(weights, weights_only=True))
            metrics = json.loads(card.read_text())["test"]
        else:
            with _cwd(home):  # RecBole's trainer opens a TensorBoard writer under ./log_tensorboard
                trainer = get_trainer(rb_config["MODEL_TYPE"], model)(rb_config, net)
            trainer.tensorboard.close()
            trainer.tensorboard = type(trainer.tensorboard)(str(home / "log_tensorboard"))
            start = time.perf_counter()
            best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=progress)
            # RecBole's own load_best_model calls torch.load without weights_only (fails on torch>=2.6);
            # this checkpoint is the one RecBole just wrote.
            net.load_state_dict(torch.load(trainer.saved_model_file, weights_only=False)["state_dict"])
            test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
            metrics = {k: float(v) for k, v in test.items()}
            torch.save(net.state_dict(), weights)
            card.write_text(json.dumps({
                "model": model, "dataset": str(ds.path), "train_users": len(train_users),
                "train_interactions": n_inter, "positives_only": config.positives_only, "recbole_params": params,
                "epochs_run": len(trainer.train_loss_dict),
                "best_valid_ndcg@10": float(best_valid), "test": metrics,
                "train_seconds": round(time.perf_counter() - start, 1),
            }, indent=1, default=str))
        if verbose:
            print(f"RecBole {model} on the train users' logs (RecBole test split): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return cls(net, train_data._dataset, ds, model, metrics, positives_only=config.positives_only)

    # -- acting ---------------------------------------------------------------------------------

    def bind(self, env) -> "RecBolePolicy":
        """Take the slate size from ``env`` and check it runs on the dataset this model was trained on."""
        batch = env.unwrapped.batch
        if batch.dataset.item_tokens != self.dataset.item_tokens:
            raise ValueError(f"{self.name} was trained on {self.dataset.path}, but the env runs {batch.dataset.path}; "
                             f"train the policy on the env's dataset.")
        self.k = batch.config.slate_size
        return self

    def scores(self, history_items: np.ndarray, user: int | None = None, skipped: np.ndarray | None = None) -> np.ndarray:
        """Score of every env item for a user with this memory (env item indices, oldest first, -1 =
        empty; ``skipped`` flags fast-skipped memory items, left out when trained on positives only).

        Items RecBole cannot score get -inf."""
        import torch
        from recbole.data.interaction import Interaction

        hist = np.asarray(history_items)
        known = (hist >= 0) & (self.env_to_rb[np.maximum(hist, 0)] > 0)  # in the memory and known to RecBole
        keep = known
        if skipped is not None and self.positives_only:
            liked = known & (np.asarray(skipped) < 0.5)
            keep = liked if liked.any() else known  # no known watched item: use every known one rather than nothing
        hist = self.env_to_rb[hist[keep]]
        with torch.no_grad():
            if self.sequential:
                if len(hist) == 0:
                    raise ValueError(f"{self.name} needs at least one memory item RecBole knows; got none "
                                     f"(obs['history_items'] is empty or only holds items without train interactions).")
                seq = hist[-self.model.max_seq_length:]
                inter = Interaction({self.model.ITEM_SEQ: torch.as_tensor(seq)[None], self.model.ITEM_SEQ_LEN: torch.tensor([len(seq)])})
                rb_scores = self.model.full_sort_predict(inter)[0]
            elif user is not None and user in self.user_to_rb:
                rb_scores = self.model.full_sort_predict(Interaction({self.model.USER_ID: torch.tensor([self.user_to_rb[user]])}))
                rb_scores = rb_scores.reshape(-1)
            else:
                items = self._item_embeddings()
                rb_scores = items @ items[torch.as_tensor(hist)].mean(0) if len(hist) else torch.zeros(len(items))
        out = rb_scores.float().numpy()[self.env_to_rb]
        out[self.env_to_rb == 0] = -np.inf
        return out

    def _item_embeddings(self):
        if hasattr(self.model, "item_embedding"):
            if callable(getattr(self.model, "get_ego_embeddings", None)):  # graph models: propagated embeddings
                return self.model.forward()[1]
            return self.model.item_embedding.weight
        raise ValueError(f"{self.name} has no item embeddings to fold in a user it was not trained on; "
                         f"use user_split='train' or a sequential model.")

    def rank(self, observation: dict[str, np.ndarray], info: dict[str, Any], n: int) -> np.ndarray:
        """The ``n`` best actions (item or candidate indices), best first."""
        score = self.scores(observation["history_items"], info.get("user_index"), observation["history_feedback"][:, 1])
        if "candidates" in observation:
            return np.argsort(-score[observation["candidates"]], kind="stable")[:n]
        order = np.argsort(-score, kind="stable")  # unscorable (-inf) items last
        consumed = observation["consumed"][order] == 1
        return np.concatenate([order[~consumed], order[consumed]])[:n]  # consumed only if nothing else is left

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.rank(observation, info, self.k)
