"""RecSimEnv: a Gymnasium environment for recommender policies facing simulated users.

Importing this package registers ``RecSimEnv-v1`` (sessions end by the leaving model fitted on real sessions) and
``RecSimEnv-v0`` (sessions end when patience is spent), both with a ``vector_entry_point`` for
``gym.make_vec(..., vectorization_mode="vector_entry_point")``. ``ENV_ID`` is the newest.
"""

from gymnasium.envs.registration import register, registry

from recsim_env.core import EnvConfig, UserDynamics
from recsim_env.data import AtomicFileError, Dataset, FeedbackThresholds, load_dataset
from recsim_env.env import RecSimEnv
from recsim_env.rewards import RewardWeights
from recsim_env.vector_env import RecSimVectorEnv

__all__ = [
    "ENV_ID", "AtomicFileError", "Dataset", "EnvConfig", "FeedbackThresholds", "RecSimEnv", "RecSimVectorEnv",
    "RewardWeights", "UserDynamics", "load_dataset",
]
__version__ = "0.2.0"
ENV_ID = "RecSimEnv-v1"

for _id, _session_end in (("RecSimEnv-v0", "patience"), ("RecSimEnv-v1", "fitted")):
    if _id not in registry:
        register(
            id=_id,
            entry_point="recsim_env.env:RecSimEnv",
            vector_entry_point="recsim_env.vector_env:RecSimVectorEnv",
            max_episode_steps=100,
            kwargs={"session_end": _session_end},
        )
