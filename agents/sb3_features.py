"""SB3 features extractor for slate-building agents: one shared score per candidate."""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["CandidateScorer"]


class CandidateScorer(BaseFeaturesExtractor):
    """Scores each candidate from [its features, the user's taste profile, their text dot product] with
    the same small MLP (so the scores follow the candidates whatever their order; without item text, from
    the candidate features alone); candidates already
    in the slate (``slate_mask``) get -20. Output: (batch, num_candidates), used as logits / Q values."""

    def __init__(self, observation_space: spaces.Dict, hidden: int = 32) -> None:
        missing = {"candidate_features", "slate_mask"} - set(observation_space.spaces)
        if missing:
            raise ValueError(f"CandidateScorer needs candidates mode wrapped in SlateBuilder; the observation lacks {sorted(missing)}.")
        n, d = observation_space["candidate_features"].shape
        # no "profile" when the dataset has no item text (SB3 drops zero-width keys): score from item stats only
        self.text_dim = observation_space["profile"].shape[0] if "profile" in observation_space.spaces else 0
        super().__init__(observation_space, features_dim=n)
        self.net = nn.Sequential(nn.Linear(d + self.text_dim + 1, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        cand = obs["candidate_features"]
        if self.text_dim:
            user = obs["profile"][:, None, :].expand(-1, cand.shape[1], -1)
        else:
            user = cand[..., :0]
        dot = (cand[..., : self.text_dim] * user).sum(-1, keepdim=True)
        return self.net(torch.cat([cand, user, dot], -1)).squeeze(-1) - 20.0 * obs["slate_mask"]
