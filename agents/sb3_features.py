"""SB3 features extractor for slate-building agents: one shared score per candidate."""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["CandidateScorer"]


class CandidateScorer(BaseFeaturesExtractor):
    """Scores each candidate from [its features, the user's taste profile, their text dot product] with
    the same small MLP (so the scores follow the candidates whatever their order); candidates already
    in the slate (``slate_mask``) get -20. Output: (batch, num_candidates), used as logits / Q values."""

    def __init__(self, observation_space: spaces.Dict, hidden: int = 32) -> None:
        missing = {"candidate_features", "profile", "slate_mask"} - set(observation_space.spaces)
        if missing:
            raise ValueError(f"CandidateScorer needs candidates mode wrapped in SlateBuilder; the observation lacks {sorted(missing)}.")
        n, d = observation_space["candidate_features"].shape
        self.text_dim = observation_space["profile"].shape[0]
        super().__init__(observation_space, features_dim=n)
        self.net = nn.Sequential(nn.Linear(d + self.text_dim + 1, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        cand = obs["candidate_features"]
        user = obs["profile"][:, None, :].expand(-1, cand.shape[1], -1)
        dot = (cand[..., : self.text_dim] * user).sum(-1, keepdim=True)
        return self.net(torch.cat([cand, user, dot], -1)).squeeze(-1) - 20.0 * obs["slate_mask"]
