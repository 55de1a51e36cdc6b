"""The LLM user simulator: model loading, scene prompts, one-pass option scoring."""

from simulators.llm.simulator import LLMOutputError, LLMSimulatorConfig, LLMUserSimulator

__all__ = ["LLMOutputError", "LLMSimulatorConfig", "LLMUserSimulator"]
