"""UGM: on a synthetic population with planted taste groups, summarize/cluster/reflect recovers them."""

import json

import numpy as np
import pytest

from recsim_env.data import load_dataset
from simulators.groups import GroupConfig, build_groups, load_groups, write_groups
from tests.conftest import write_atomic

GENRES = ("Horror", "Musical", "Western")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """90 users in 3 planted groups of 30: a group-g user watches 10 of the 20 items of genre g (all 4-5 stars),
    plus one item of another genre it rated 5 (noise). Profiles are unrelated to the groups."""
    rng = np.random.default_rng(0)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(90):
        g = u // 30
        items = list(rng.choice(np.arange(20 * g, 20 * g + 20), 10, replace=False))
        items.append(int(rng.choice([i for i in range(60) if i // 20 != g])))
        for t, i in enumerate(items):
            inter.append(f"u{u}\ti{i}\t{rng.choice([4, 5]) if t < 10 else 5}\t{1000 + t}")
    items = ["item_id:token\tclass:token_seq"] + [f"i{i}\t{GENRES[i // 20]}" for i in range(60)]
    users = ["user_id:token\tgender:token\tage:token"] + [f"u{u}\t{'MF'[rng.integers(2)]}\t{rng.choice([20, 35, 50])}" for u in range(90)]
    path = write_atomic(tmp_path_factory.mktemp("ugm"), "planted", {"inter": "\n".join(inter), "item": "\n".join(items), "user": "\n".join(users)})
    return load_dataset(str(path), split_fractions=(1.0, 0.0, 0.0))


def test_ugm_recovers_planted_groups(planted, tmp_path):
    cfg = GroupConfig(k=3, top_n=60, min_agreement=0.8, min_size=10)
    groups = build_groups(planted, cfg)
    assert len(groups) == 3
    index = {t: i for i, t in enumerate(planted.user_tokens)}
    truth = {g: {index[f"u{u}"] for u in range(30 * g, 30 * g + 30)} for g in range(3)}
    found = set()
    for grp in groups:
        members = set(grp.members)
        g = max(truth, key=lambda t: len(truth[t] & members))
        jaccard = len(truth[g] & members) / len(truth[g] | members)
        assert jaccard > 0.9, (grp.profile_summary, jaccard)
        assert grp.representative in truth[g]
        assert next(iter(grp.preference_traits)) == f"tag={GENRES[g]}"
        assert GENRES[g] in grp.profile_summary and f"Recommend more {GENRES[g]}" in grp.recommendation_directions
        found.add(g)
    assert found == {0, 1, 2}
    # reflect drops the other groups' users even though top_n=60 lets them in as candidates
    assert max(len(g.members) for g in groups) <= 30
    write_groups(groups, tmp_path / "groups.json", cfg, command="recsim build-groups --out groups.json")
    assert json.loads((tmp_path / "groups.json").read_text())["command"] == "recsim build-groups --out groups.json"
    again = load_groups(tmp_path / "groups.json")
    assert [g.members for g in again] == [g.members for g in groups] and again[0].agreement == groups[0].agreement


def test_small_groups_are_dropped_and_errors_are_clear(planted):
    assert build_groups(planted, GroupConfig(k=3, min_size=31, min_agreement=0.8)) == []
    with pytest.raises(ValueError, match="lower k"):
        build_groups(planted, GroupConfig(k=500))
    with pytest.raises(ValueError, match="mode must be"):
        GroupConfig(mode="age")


def test_demographic_groups_on_ml100k(ml100k):
    groups = build_groups(ml100k, GroupConfig(k=8, mode="demographics", min_agreement=0.6))
    assert groups and all(len(g.members) >= 10 for g in groups)
    assert all(any(w.startswith(("gender=", "age=", "occupation=")) for w in g.preference_traits) for g in groups)


def test_cli_writes_groups(tmp_path, capsys):
    from recsim_cli import main

    assert main(["build-groups", "--out", str(tmp_path / "g.json"), "--k", "5", "--mode", "both"]) == 0
    groups = load_groups(tmp_path / "g.json")
    assert groups and "groups (of k=5)" in capsys.readouterr().out


class GenreJudge:
    """A test double for the LLM: says "yes" when most of a candidate's listed items carry the genre
    named first in the prompt's tags, and writes a summary naming the representative's top tag."""

    model_name, adapter = "genre-judge", None

    def __init__(self, tokenizer):
        from simulators.llm.prompts import ChatFormat

        self.chat = ChatFormat(tokenizer)
        self.prompts: list[str] = []

    def generate(self, prompts, max_new_tokens):
        self.prompts += prompts
        return [" Fans of " + p.split("most typical tags: ")[1].split(",")[0] for p in prompts]

    def letter_probs(self, prompts, n_letters, answer_prefix):
        assert n_letters == 2 and all(p.endswith(answer_prefix) for p in prompts)
        out = []
        for p in prompts:
            genre = p.split("Typical tags: ")[1].split(",")[0].split(".")[0]
            lines = [line for line in p.split("recently watched:\n")[1].split("\n") if line.startswith("- ")]
            yes = float(np.mean([genre in line for line in lines]) > 0.5)
            out.append([yes, 1 - yes])
        return np.array(out)


def test_llm_path_writes_summaries_and_judges_members(planted, tokenizer):
    judge = GenreJudge(tokenizer)
    groups = build_groups(planted, GroupConfig(k=3, top_n=60, min_size=10), llm=judge)
    index = {t: i for i, t in enumerate(planted.user_tokens)}
    assert len(groups) == 3
    for grp in groups:
        genre = grp.profile_summary.split("Fans of ")[1]
        g = GENRES.index(genre)
        assert set(grp.members) == {index[f"u{u}"] for u in range(30 * g, 30 * g + 30)}  # the judge's verdicts
        assert grp.summary_by == "llm:genre-judge" and set(grp.agreement.values()) == {1.0}
    assert len(judge.prompts) == 3 and "Items this member liked most:" in judge.prompts[0]


def test_llm_path_runs_a_real_model(planted, tiny_llm):
    from simulators.llm import LLMUserSimulator

    llm = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=planted)
    p = llm.letter_probs(["Q? Answer: [", "Another Q? Answer: ["], 2, "Answer: [")
    assert p.shape == (2, 2) and np.allclose(p.sum(1), 1.0)
    groups = build_groups(planted, GroupConfig(k=2, top_n=20, min_size=1, summary_tokens=4, judge_history=3), llm=llm)
    for grp in groups:
        assert grp.summary_by.startswith("llm:") and all(0.5 <= a <= 1.0 for a in grp.agreement.values())
