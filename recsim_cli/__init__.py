"""``recsim`` command line, the top layer: demo and rollouts of policies (``rollout``), training of SB3 agents
(``agents``), training and evaluation of user simulators (``simulators``) and their training data (``data``).
Nothing below this package imports it."""

from recsim_cli.main import main

__all__ = ["main"]
