from types import SimpleNamespace

import numpy as np
import pytest

from simulators.llm.prompts import ChatFormat, SceneBuilder
from simulators.training.examples import choice_example
from simulators.training.preferences import PairConfig, behaviour_pairs, choice_pair, hardest_wrong, judge_pair
from simulators.training.scenes import SceneConfig, choice_scenes


@pytest.fixture(scope="module")
def builder(ml100k, tokenizer):
    return SceneBuilder(ml100k, ChatFormat(tokenizer))


def test_choice_pair_is_the_page_prompt_real_letter_against_a_wrong_one(ml100k, builder):
    scene = choice_scenes(ml100k, "train", SceneConfig(per_user=1, seed=3))[0]
    wrong = (scene.target + 1) % len(scene.options)
    pair = choice_pair(builder, scene, wrong)
    assert pair["prompt"] == choice_example(builder, scene)["prompt"]
    assert pair["chosen"] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[scene.target] + "]"
    assert pair["rejected"] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[wrong] + "]"
    with pytest.raises(ValueError, match="wrong option"):
        choice_pair(builder, scene, scene.target)
    assert judge_pair("p", skip=True) == {"prompt": "p", "chosen": "B]", "rejected": "A]"}
    assert judge_pair("p", skip=False) == {"prompt": "p", "chosen": "A]", "rejected": "B]"}


def test_hardest_wrong_is_the_most_likely_other_option():
    assert hardest_wrong(np.array([0.5, 0.1, 0.3, 0.1]), target=0) == 2
    assert hardest_wrong(np.array([0.1, 0.6, 0.3]), target=2) == 1


def test_behaviour_pairs_mix_kinds_seeded_from_train_users(ml100k, builder):
    config = PairConfig(n_pairs=40, feed_fraction=0.5, unseen_fraction=0.5, seed=1, scenes=SceneConfig(seed=1))
    rows, counts = behaviour_pairs(ml100k, builder, config)
    assert counts["choice"] == 20 and counts["feed_unseen"] == 10 and counts["feed_real"] == 10
    assert len(rows) == 40
    again, _ = behaviour_pairs(ml100k, builder, config)
    assert rows == again
    assert all(r["chosen"] != r["rejected"] for r in rows)
    choice = [r for r in rows if r["prompt"].endswith("Behavior: [")]
    feed = [r for r in rows if r["prompt"].endswith("Judge: [")]
    assert len(choice) == 20 and len(feed) == 20
    assert {r["chosen"] for r in feed} <= {"A]", "B]"}
    assert sum(r["chosen"] == "B]" for r in feed) == counts["feed_unseen"] + counts["feed_real_skips"]


def test_behaviour_pairs_reject_the_references_favourite_wrong_option(ml100k, builder):
    class FavoursLast:  # a test double: puts most mass on the last option
        def respond(self, requests, rngs):
            out = []
            for r in requests:
                p = np.arange(1, len(r.slate) + 2, dtype=float)
                out.append(SimpleNamespace(choice_probs=p / p.sum()))
            return out

    config = PairConfig(n_pairs=12, feed_fraction=0.0, seed=2, scenes=SceneConfig(seed=2))
    rows, counts = behaviour_pairs(ml100k, builder, config, reference=FavoursLast())
    scenes = choice_scenes(ml100k, "train", config.scenes)
    by_prompt = {choice_example(builder, s)["prompt"]: s for s in scenes}
    assert counts["choice"] == 12
    for r in rows:
        s = by_prompt[r["prompt"]]
        last = len(s.options) - 1
        expected = last if s.target != last else last - 1
        assert r["rejected"] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[expected] + "]"


def test_pair_config_and_cli_explain_bad_input(tmp_path):
    from recsim_cli import main

    with pytest.raises(ValueError, match="feed_fraction must be in"):
        PairConfig(feed_fraction=1.5)
    with pytest.raises(SystemExit, match="pairs: n_pairs must be >= 1"):
        main(["pairs", "--out", str(tmp_path / "p"), "--n-pairs", "0"])
    assert not (tmp_path / "p").exists()


def test_cli_writes_pairs_a_dpo_run_can_read(tmp_path, capsys):
    import json

    from recsim_cli import main

    assert main(["pairs", "--out", str(tmp_path / "p"), "--n-pairs", "6", "--reference", "smollm2-135m"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "p" / "pairs.jsonl").read_text().splitlines()]
    meta = json.loads((tmp_path / "p" / "pairs.json").read_text())
    assert len(rows) == 6 and meta["counts"]["choice"] == 3 and meta["command"].startswith("recsim pairs")
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    assert "train-simulator dpo --pairs" in capsys.readouterr().out
