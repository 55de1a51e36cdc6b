"""GA-GRPO (G-UBS): group-aware advantages over a training user, a similar user and the group profile.

Each training example becomes three consecutive dataset rows with the same item: the training user
u_T (with history), a similar user u_S from the same group(s) (with history) and the group profile
P_g (no history); u_T stands in for a missing u_S or P_g. The ``role`` column says which
(``"user"``, ``"similar"``, ``"group"``, in that order).

:class:`GroupAwareGRPOTrainer` subclasses TRL's ``GRPOTrainer`` at the points PLATFORM.md names:

* its sampler keeps each triple together and in order inside one generation batch (triples are
  shuffled as wholes);
* after TRL has computed the rewards and its own per-prompt advantages, the advantages are replaced by
  :func:`group_advantages`: each completion's summed reward R is weighted by its role's weight
  (W_T, W_S, W_G) and normalised over all completions of the triple, ``(W_r R - mean) / (std + eps)``,
  so the three prompts share one baseline. KL to the reference is TRL's ``beta``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler, nanstd

__all__ = ["ROLES", "GroupAwareGRPOTrainer", "TripleRepeatSampler", "group_advantages"]

ROLES = ("user", "similar", "group")


def group_advantages(
    rewards: torch.Tensor, num_generations: int, role_weights: Sequence[float], scale: bool = True, eps: float = 1e-4,
) -> torch.Tensor:
    """Advantages of ``rewards`` laid out as [triple][role][generation] (flat, roles in :data:`ROLES` order).

    Each reward is multiplied by its role's weight, then centred (and, with ``scale``, divided by the
    std + ``eps``) over the 3 x ``num_generations`` completions of its triple. NaN rewards (unscorable
    completions) are left out of the statistics and get advantage 0.
    """
    n_roles = len(role_weights)
    if rewards.numel() % (n_roles * num_generations):
        raise ValueError(
            f"{rewards.numel()} rewards do not split into triples of {n_roles} roles x {num_generations} generations; "
            "make the generation batch a multiple of 3 x num_generations."
        )
    w = torch.as_tensor(role_weights, dtype=rewards.dtype, device=rewards.device).view(1, n_roles, 1)
    r = rewards.view(-1, n_roles, num_generations) * w
    mean = torch.nanmean(r, dim=(1, 2), keepdim=True)
    adv = r - mean
    if scale:
        adv = adv / (nanstd(r, dim=(1, 2), keepdim=True) + eps)
    return torch.nan_to_num(adv.reshape(-1), nan=0.0)


class TripleRepeatSampler(RepeatSampler):
    """TRL's ``RepeatSampler`` whose shuffling moves whole (user, similar, group) triples."""

    def __init__(self, data_source, mini_repeat_count: int, batch_size: int = 1, repeat_count: int = 1,
                 shuffle: bool = True, seed: int | None = None) -> None:
        if batch_size % len(ROLES) or len(data_source) % len(ROLES):
            raise ValueError(
                f"GA-GRPO needs whole triples: unique prompts per generation batch ({batch_size}) and dataset rows "
                f"({len(data_source)}) must be multiples of {len(ROLES)}; set generation_batch_size to a multiple of "
                "3 x num_generations."
            )
        super().__init__(data_source, mini_repeat_count, batch_size, repeat_count, shuffle, seed)

    def __iter__(self):
        n = self.num_samples // len(ROLES)
        order = torch.randperm(n, generator=self.generator).tolist() if self.shuffle else list(range(n))
        indexes = [len(ROLES) * t + k for t in order for k in range(len(ROLES))]
        chunks = [indexes[i : i + self.batch_size] for i in range(0, len(indexes), self.batch_size)]
        for chunk in (c for c in chunks if len(c) == self.batch_size):
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index


class GroupAwareGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with G-UBS group-aware advantages (see the module docstring).

    ``role_weights``: (W_T, W_S, W_G). Every other argument is ``GRPOTrainer``'s.
    """

    def __init__(self, *args, role_weights: Sequence[float] = (1.0, 1.0, 1.0), **kwargs) -> None:
        if len(role_weights) != len(ROLES) or min(role_weights) < 0:
            raise ValueError(f"role_weights must be three non-negative numbers (W_T, W_S, W_G), got {role_weights}.")
        self.role_weights = tuple(float(w) for w in role_weights)
        super().__init__(*args, **kwargs)
        if "role" not in self.train_dataset.column_names:
            raise ValueError("GA-GRPO data needs a 'role' column (user / similar / group); see group_grpo's docstring.")

    def _get_train_sampler(self, dataset=None):
        dataset = dataset if dataset is not None else self.train_dataset
        return TripleRepeatSampler(
            dataset, self.num_generations, self.args.generation_batch_size // self.num_generations,
            self.num_iterations * self.args.steps_per_generation, self.shuffle_dataset, self.args.seed,
        )

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        g = self.num_generations if self.model.training else self.num_generations_eval
        roles = [x["role"] for x in inputs]
        expected = [r for _ in range(len(roles) // (len(ROLES) * g)) for r in ROLES for _ in range(g)]
        if roles != expected:
            raise RuntimeError(
                "GA-GRPO rows arrived out of (user, similar, group) order; keep the dataset in triples and the "
                "generation batch a multiple of 3 x num_generations."
            )
        output = super()._generate_and_score_completions(inputs)
        rpf = self._last_rewards_per_func
        rewards = (rpf * self.reward_weights.to(rpf.device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rpf).all(dim=1)] = torch.nan
        advantages = group_advantages(rewards, g, self.role_weights, scale=self.scale_rewards != "none")
        n = len(inputs)
        output["advantages"] = advantages[self.accelerator.process_index * n : (self.accelerator.process_index + 1) * n]
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["group_advantage_std"].append(nanstd(advantages).item())
        return output
