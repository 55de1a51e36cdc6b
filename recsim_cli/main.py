"""The ``recsim`` entry point: one parser, each command in its own module."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from recsim_cli import agents, data, perception, record, rollout, simulators
from recsim_cli.errors import USER_ERRORS

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsim", description="RecSimEnv-v1: roll out recommender policies, train agents and user simulators, measure simulator fidelity.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (rollout, agents, simulators, data, perception, record):
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error (bad argument, dataset or path) prints its message alone and returns 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["recsim", *(argv if argv is not None else sys.argv[1:])])  # re-runnable as shown
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if os.environ.get("RECSIM_DEBUG"):
            raise
        print(f"recsim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
