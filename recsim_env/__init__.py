"""RecSimEnv: a Gymnasium environment for recommender policies facing simulated users.

Importing this package registers ``RecSimEnv-v0`` (with a ``vector_entry_point`` for
``gym.make_vec(..., vectorization_mode="vector_entry_point")``).
"""

from gymnasium.envs.registration import register, registry

from recsim_env.core import EnvConfig, UserDynamics
from recsim_env.data import AtomicFileError, Dataset, FeedbackThresholds, load_dataset
from recsim_env.env import RecSimEnv
from recsim_env.rewards import RewardWeights
from recsim_env.vector_env import RecSimVectorEnv

__all__ = [
    "AtomicFileError", "Dataset", "EnvConfig", "FeedbackThresholds", "RecSimEnv", "RecSimVectorEnv",
    "RewardWeights", "UserDynamics", "load_dataset",
]
__version__ = "0.1.0"

if "RecSimEnv-v0" not in registry:
    register(
        id="RecSimEnv-v0",
        entry_point="recsim_env.env:RecSimEnv",
        vector_entry_point="recsim_env.vector_env:RecSimVectorEnv",
        max_episode_steps=100,
    )
