"""UserMirrorer protocol: scenes keep their sampler's invariants; scoring equals hand counts; their file format
round-trips; an LLM's prompt shows their item lines."""

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.fidelity import Contender, contenders_for
from benchmarks.protocols import usermirrorer as um


@pytest.fixture(scope="module")
def scenes(ml100k):
    return um.build_scenes(ml100k, um.UserMirrorerConfig(n_scenes=300))


def _release_year(ds, i):
    year = ds.item_fields["release_year"][i]
    return int(year) if str(year).isdigit() else None


def test_scenes_hold_their_sampler_invariants(ml100k, scenes):
    ds = ml100k
    assert len(scenes) > 250 and len({(s.choice.user, s.choice.position) for s in scenes}) == len(scenes)
    positions = np.bincount([s.choice.target for s in scenes], minlength=5)
    assert positions[4] == 0 and (positions[:4] > 30).all()  # the real item at randint(0, 3): never option E
    for s in scenes:
        c, r = s.choice, s.choice.request
        h = ds.history(c.user)
        assert ds.split[c.user] == ds.SPLITS["test"] and c.position >= 3  # at least the user's 4th interaction
        target = int(ds.inter_item[h.start + c.position])
        assert r.slate[c.target] == target and (r.slate == target).sum() == 1 and len(set(r.slate.tolist())) == 5
        assert s.timestamp == ds.inter_time[h.start + c.position]
        others = np.delete(r.slate, c.target)
        assert not np.isin(others, ds.inter_item[h]).any()  # nothing the user ever interacted with
        for i in others:  # nothing released after the interaction
            year = _release_year(ds, int(i))
            assert year is None or datetime(year, 1, 1, tzinfo=timezone.utc).timestamp() <= s.timestamp
        before = ds.inter_time[h] < s.timestamp  # memory: the last 2-10 interactions strictly before the timestamp
        n = len(r.history_items)
        assert n <= min(10, before.sum()) and (n >= 2 or n == before.sum())
        if n:
            np.testing.assert_array_equal(r.history_items, ds.inter_item[h][before][-n:])
            assert (r.history_time < s.timestamp).all()
        assert len(s.lines) == 5 and not any("avg" in line or "viewers" in line for line in s.lines)
    sources = {x for s in scenes for x in s.choice.sources}
    assert sources == {"target", "random", "collaborative", "content"}


def test_a_tiny_dataset_without_years_or_ratings(tiny_playtime_dataset, tmp_path):
    from recsim_env.data import load_dataset

    ds = load_dataset(tiny_playtime_dataset, split_fractions=(0.5, 0.0, 0.5))
    built = um.build_scenes(ds, um.UserMirrorerConfig(n_scenes=40))
    assert len(built) == 40
    for s in built:
        c, r = s.choice, s.choice.request
        h = ds.history(c.user)
        assert ds.split[c.user] == ds.SPLITS["test"] and c.position >= 3 and c.target < 4
        assert (r.slate == ds.inter_item[h.start + c.position]).sum() == 1 and len(set(r.slate.tolist())) == 5
        assert not np.isin(np.delete(r.slate, c.target), ds.inter_item[h]).any()
        assert not any(line.startswith("[New Release]") for line in s.lines)  # no release years: never tagged
    bare = um.build_scenes(ds, um.UserMirrorerConfig(n_scenes=10, memory=(0, 0)))  # memory 0 means none, not all
    assert all(len(s.choice.request.history_items) == 0 and s.choice.request.history_count >= 3 for s in bare)
    back = um.load_scenes(um.save_scenes(tmp_path / "tiny.jsonl", built, ds), ds)
    assert [b.choice.request.slate.tolist() for b in back] == [s.choice.request.slate.tolist() for s in built]


def test_same_seed_same_scenes(ml100k, scenes):
    again = um.build_scenes(ml100k, um.UserMirrorerConfig(n_scenes=300))
    assert [s.choice.request.slate.tolist() for s in again] == [s.choice.request.slate.tolist() for s in scenes]
    other = um.build_scenes(ml100k, um.UserMirrorerConfig(n_scenes=300, seed=1))
    assert [s.choice.request.slate.tolist() for s in other] != [s.choice.request.slate.tolist() for s in scenes]


def test_item_line_new_release_rule(ml100k):
    assert ml100k.item_fields["release_year"][0] == "1995"
    inside = datetime(1995, 12, 31, tzinfo=timezone.utc).timestamp()
    after = datetime(1996, 1, 2, tzinfo=timezone.utc).timestamp()
    assert um.item_line(ml100k, 0, inside) == "[New Release]Toy Story (1995) - Animation|Children's|Comedy"
    assert um.item_line(ml100k, 0, after) == "Toy Story (1995) - Animation|Children's|Comedy"


def test_merge_keeps_each_lists_order_and_drops_duplicates():
    lists = [[1, 2, 3], [4, 2, 5], [6]]
    merged = um.merge_ranking_lists(lists, np.random.default_rng(0))
    items = [i for i, _ in merged]
    assert sorted(items) == [1, 2, 3, 4, 5, 6] and len(items) == 6
    for k, lst in enumerate(lists):
        own = [i for i, src in merged if src == k]
        assert own == [i for i in lst if i in own]  # a list's items keep their order
    assert dict(merged)[1] == 0 and dict(merged)[4] == 1 and dict(merged)[6] == 2
    orders = {tuple(i for i, _ in um.merge_ranking_lists(lists, np.random.default_rng(s))) for s in range(20)}
    assert len(orders) > 1  # the interleaving is random


def test_collaborative_embedding_is_the_top_spectral_space(ml100k):
    e = um.collaborative_embedding(ml100k, 8)
    r = np.zeros((ml100k.n_users, ml100k.n_items))
    r[ml100k.inter_user, ml100k.inter_item] = 1.0
    du, di = np.clip(r.sum(1), 1, None), np.clip(r.sum(0), 1, None)
    norm = r / np.sqrt(du)[:, None] / np.sqrt(di)[None, :]
    v = e / np.sqrt(di)[:, None]
    np.testing.assert_allclose(v.T @ v, np.eye(8), atol=1e-8)  # orthonormal right singular vectors
    gram = norm.T @ (norm @ v)
    lam = (v * gram).sum(0)
    np.testing.assert_allclose(gram, v * lam, atol=1e-8)  # eigenvectors of N^T N ...
    top = np.linalg.eigvalsh(norm @ norm.T)[::-1][:8]
    np.testing.assert_allclose(lam, top, rtol=1e-6)  # ... of its 8 largest eigenvalues


def test_scores_equal_hand_counts(scenes):
    few = scenes[:2]
    t = np.array([s.choice.target for s in few])

    def planted(cs):
        p = np.full((len(cs), 5), 0.1)
        p[0, t[0]], p[1, t[1]] = 0.6, 0.2  # rows sum to 1: 0.6 + 4 * 0.1, and 0.2 + 0.8
        p[1, (t[1] + 1) % 5] = 0.5
        p[1, [j for j in range(5) if j not in (t[1], (t[1] + 1) % 5)]] = 0.1
        return p

    res = um.evaluate(few, [Contender("planted", planted), Contender("oracle", lambda cs: np.eye(5)[[c.target for c in cs]])])
    m = res["rows"]["planted"]
    assert m["expected_accuracy"] == pytest.approx(0.4) and m["expected_accuracy_se"] == pytest.approx(np.std([0.6, 0.2], ddof=1) / np.sqrt(2))
    assert m["accuracy"] == pytest.approx(0.5)  # argmax right on the first scene only
    o = res["rows"]["oracle"]
    assert o["expected_accuracy"] == o["sampled_accuracy"] == o["accuracy"] == 1.0
    prior = res["rows"]["position prior (options A-D, never E)"]
    assert prior["expected_accuracy"] == pytest.approx(0.25) and res["target_positions"][4] == 0


def test_popularity_is_far_above_chance_on_their_scenes(ml100k, scenes):
    """The sanity row: with most distractors random catalogue films, the most popular option is often the real one."""
    res = um.evaluate(scenes, contenders_for(["random", "popularity"], ml100k))
    assert res["rows"]["popularity"]["expected_accuracy"] > 0.4 > res["rows"]["random"]["expected_accuracy"] + 0.15
    assert res["distractor_sources"]["random"] > 0.4


def test_their_file_format_round_trips_and_bad_files_say_why(ml100k, scenes, tmp_path):
    path = um.save_scenes(tmp_path / "ml-100k_eval.jsonl", scenes[:80], ml100k)
    back = um.load_scenes(path, ml100k)
    assert len(back) == 80
    for a, b in zip(scenes, back):
        assert a.choice.request.slate.tolist() == b.choice.request.slate.tolist() and a.choice.target == b.choice.target
        assert a.choice.request.history_items.tolist() == b.choice.request.history_items.tolist()
        assert a.timestamp == b.timestamp and a.lines == b.lines
    lines = path.read_text().splitlines()
    theirs = tmp_path / "theirs.jsonl"  # as their sampler writes it: no option ids, options by item line
    theirs.write_text("\n".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "impression_list"}) for x in lines))
    for a, b in zip(scenes, um.load_scenes(theirs, ml100k)):
        assert a.lines == b.lines and a.choice.request.slate[a.choice.target] == b.choice.request.slate[b.choice.target]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0].replace('"item_id": "', '"item_id": "no-such-') + "\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match=r"1 of 2 scenes .* do not match 'ml-100k'.*first at line 1"):
        um.load_scenes(bad, ml100k)
    bad.write_text('{"user_id": "1"}\n')
    with pytest.raises(ValueError, match="not a UserMirrorer eval scene"):
        um.load_scenes(bad, ml100k)
    bad.write_text(lines[0] + "\nnot json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        um.load_scenes(bad, ml100k)
    bad.write_text(json.dumps(json.loads(lines[0]) | {"text": "flat"}) + "\n")
    with pytest.raises(ValueError, match=r"no \['text.action_list', 'text.history'\]"):
        um.load_scenes(bad, ml100k)


def test_llm_prompt_shows_their_item_lines(ml100k, tokenizer, scenes):
    from simulators.llm.prompts import ChatFormat, SceneBuilder

    builder = SceneBuilder(ml100k, ChatFormat(tokenizer))
    shown = []

    def record(cs):
        shown.extend(builder.page_listing(c.request)[0] for c in cs)
        return np.full((len(cs), 5), 0.2)

    tagged = next(s for s in scenes if any(line.startswith("[New Release]") for line in s.lines))
    um.evaluate([tagged], [Contender("llm", record, simulator=SimpleNamespace(scenes=builder))])
    assert all(f"[{'ABCDE'[j]}] {line}\n" in shown[0] for j, line in enumerate(tagged.lines))
    assert "from" not in shown[0].split("shows you now:")[1]  # no "avg x/5 from n viewers"
    assert builder.option_lines is None and "avg" in builder.page_listing(tagged.choice.request)[0]  # restored after


def test_cli_scores_built_scenes_and_their_file_alike(tmp_path, capsys, monkeypatch):
    from recsim_cli import main

    monkeypatch.setenv("RECSIM_CACHE", str(tmp_path / "cache"))
    out, saved = tmp_path / "um", tmp_path / "scenes.jsonl"
    args = ["eval-simulator", "--protocol", "usermirrorer", "--simulator", "fitted", "--baselines", "popularity"]
    assert main([*args, "--n-scenes", "60", "--out", str(out), "--save-scenes", str(saved)]) == 0
    first = out.with_suffix(".md").read_text()
    assert "| fitted |" in first and "67.3%" in first and out.with_suffix(".png").is_file() and saved.is_file()
    assert main([*args, "--scenes", str(saved), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again.md").read_text()
    row = [line for line in first.splitlines() if line.startswith("| fitted |")]
    assert row == [line for line in again.splitlines() if line.startswith("| fitted |")]
    released = um.released_scenes_path("ml-100k")  # their released file, where the cache has one, is scored by default
    assert released.parent.parent == tmp_path / "cache"
    released.parent.mkdir(parents=True)
    mixed = saved.read_text().splitlines()
    other = json.loads(mixed[0]) | {"dataset": "ml-1m", "user_id": "no-such-user"}  # their set mixes datasets
    released.write_text("\n".join([json.dumps(other), *mixed[:30]]) + "\n")
    assert main([*args, "--out", str(tmp_path / "released")]) == 0
    assert "scoring their released scenes found at" in capsys.readouterr().out
    assert "30 scenes" in (tmp_path / "released.md").read_text() and "(ml-100k_eval.jsonl)" in (tmp_path / "released.md").read_text()
    assert main(["eval-simulator", "--protocol", "agent4rec", "--simulator", "fitted", "--scenes", str(saved)]) == 2
    assert "--scenes and --save-scenes apply to --protocol usermirrorer" in capsys.readouterr().err
    assert main([*args, "--n-scenes", "0"]) == 2 and "n_scenes >= 1" in capsys.readouterr().err


def test_an_llm_simulator_answers_their_scenes(ml100k, tiny_llm, scenes):
    from benchmarks.fidelity import simulator_contender
    from simulators.llm import LLMUserSimulator

    llm = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, min_option_mass=0.0, greedy=True)
    res = um.evaluate(scenes[:6], [simulator_contender("tiny llm", llm)])
    m = res["rows"]["tiny llm"]
    assert 0.0 < m["expected_accuracy"] < 1.0 and np.isfinite(m["log_loss"]) and m["n"] == 6
    assert llm.scenes.option_lines is None


def test_exact_svd_gives_their_svd_lowrank_top_lists(ml100k):
    """Their get_spectral_info (torch.svd_lowrank, q=256, niter=10), verbatim: the same collaborative top 32."""
    import torch

    idx = torch.tensor(np.stack([ml100k.inter_user, ml100k.inter_item]))
    mat = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), size=(ml100k.n_users, ml100k.n_items)).coalesce()

    def degree(m, dim=0, exp=-0.5):
        return torch.nan_to_num(torch.clip(torch.sparse.sum(m, dim=dim).to_dense(), min=1.0).pow(exp), nan=1.0, posinf=1.0, neginf=1.0)

    vals = mat.values() * degree(mat, 0).reshape(-1, 1)[mat.indices()[1]].squeeze()
    norm = torch.sparse_coo_tensor(mat.indices(), degree(mat, 1)[mat.indices()[0]] * vals, size=mat.shape, dtype=torch.float).coalesce()
    torch.manual_seed(0)
    _, _, v = torch.svd_lowrank(norm, q=256, niter=10)
    theirs = (v[:, :64] * degree(mat, 0, 0.5).reshape(-1, 1)).numpy().astype(np.float64)
    ours = um.collaborative_embedding(ml100k, 64)
    rows = np.zeros((40, ml100k.n_items))
    for s, u in enumerate(ml100k.users("test")[:40]):
        rows[s, ml100k.inter_item[ml100k.history(u)]] = 1.0
    for a, b in zip(rows @ ours @ ours.T, rows @ theirs @ theirs.T):
        assert len(set(np.argsort(-a)[:32]) & set(np.argsort(-b)[:32])) >= 31
