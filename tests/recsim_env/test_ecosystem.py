"""Gymnasium-ecosystem tools take RecSimEnv-v0 without adapters: TorchRL's GymEnv (installed by `make setup`)."""

from __future__ import annotations

import warnings

import torch


def test_torchrl_gymenv_takes_the_env_as_it_is():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchrl.envs import GymEnv
        from torchrl.envs.utils import check_env_specs

    import recsim_env  # noqa: F401

    for kwargs in (dict(slate_size=5), dict(slate_size=5, action_mode="candidates", num_candidates=20, feedback_mode="page")):
        env = GymEnv("RecSimEnv-v0", **kwargs)  # probes kwargs: relies on the standard TypeError wording
        check_env_specs(env, seed=0)
        torch.manual_seed(0)
        td = env.rollout(4, break_when_any_done=False)  # random actions; TorchRL resets an ended episode itself
        assert td["next", "reward"].shape == (4, 1) and td["action"].shape[:2] == (4, 5)  # one-hot per slot (TorchRL)
        assert td["next", "history_items"].dtype.is_floating_point is False
        env.close()
