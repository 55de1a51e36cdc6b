"""Recommender policies for RecSimEnv: heuristics, RecBole backbones, SB3 agents, simulator re-ranking."""

from agents.base import RecommenderPolicy, as_policy
from agents.rollout import rollout
from agents.heuristics import ContentPolicy, LogReplayPolicy, PopularityPolicy, RandomPolicy
from agents.recbole_policy import RecBoleConfig, RecBolePolicy
from agents.sb3_agents import AgentConfig, SB3Policy, train_agent

__all__ = [
    "AgentConfig", "ContentPolicy", "PopularityPolicy", "RandomPolicy", "RecBoleConfig", "RecBolePolicy",
    "RecommenderPolicy", "SB3Policy", "as_policy", "rollout", "train_agent",
]
