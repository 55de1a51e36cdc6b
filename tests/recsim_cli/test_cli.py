"""``recsim`` user errors: the message alone (no traceback) and exit status 2, before any long work runs."""

from __future__ import annotations

import pytest

from recsim_cli import main


@pytest.mark.parametrize("argv, match", [
    (["rollout", "--episodes", "0"], r"--episodes and --seeds must be >= 1, got --episodes 0"),
    (["rollout", "--seeds", "0"], r"--seeds 0"),
    (["rollout", "--policy", "random,random"], r"lists \['random'\] more than once"),
    (["rollout", "--policy", "random,"], r"has an empty name"),
    (["rollout", "--dataset", "/no/such/dir", "--episodes", "1"], r"No atomic dataset at /no/such/dir"),
    (["rollout", "--slate-size", "0", "--episodes", "1"], r"slate_size must be >= 1, got 0"),
    (["rollout", "--policy", "random,no_such_module_xyz:Policy", "--episodes", "1"], r"cannot import module 'no_such_module_xyz'"),
    (["rollout", "--policy", "json:NoPolicy", "--episodes", "1"], r"module 'json' has no attribute 'NoPolicy'"),
    (["rollout", "--policy", "oracle", "--episodes", "1"], r"Unknown policy 'oracle'"),
])
def test_user_errors_print_the_message_and_exit_2(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("recsim rollout: error: ")
    import re

    assert re.search(match, err), err


def test_unwritable_out_fails_before_the_rollout(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["rollout", "--episodes", "1", "--out", str(blocker / "results")]) == 2
    captured = capsys.readouterr()
    assert "is not a writable folder" in captured.err and "policy" not in captured.out  # no table: nothing ran
