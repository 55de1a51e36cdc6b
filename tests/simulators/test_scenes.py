import datetime

import numpy as np
import pytest

from recsim_env.data import load_dataset
from simulators.training.scenes import SceneConfig, _Exposure, choice_scenes, content_embeddings, feed_scenes

SMALL = SceneConfig(per_user=2)


def test_choice_scenes_hold_the_real_item_once_and_nothing_the_user_consumed_or_not_yet_released(ml100k):
    scenes = choice_scenes(ml100k, "train", SMALL)
    train = set(ml100k.users("train").tolist())
    years = {i: int(ml100k.item_fields["release_year"][i]) for i in range(ml100k.n_items) if ml100k.item_fields["release_year"][i].isdigit()}
    counts = []
    for s in scenes:
        h = ml100k.history(s.user)
        real = int(ml100k.inter_item[h.start + s.position])
        opts = s.options.tolist()
        assert s.user in train and opts.count(real) == 1 and opts[s.target] == real and len(set(opts)) == len(opts)
        assert 2 <= len(opts) <= 12 and len(s.sources) == len(opts)
        assert s.sources[s.target] == "target" and s.sources.count("target") == 1
        assert set(s.sources) <= {"target", "random", "collaborative", "content"}
        ever = set(ml100k.inter_item[h].tolist())
        assert not (set(opts) - {real}) & ever, "a distractor the user interacted with"
        year = datetime.datetime.fromtimestamp(ml100k.inter_time[h.start + s.position], datetime.timezone.utc).year
        assert all(years.get(i, 0) <= year for i in opts if i != real), "an item released after the target time"
        # the memory is the real history strictly before the target
        before = ml100k.inter_item[h.start : h.start + s.position][-SMALL.memory :]
        np.testing.assert_array_equal(s.request.history_items, before)
        assert (s.request.history_time <= ml100k.inter_time[h.start + s.position]).all()
        counts.append(len(opts))
    assert len(set(counts)) > 5  # the number of options varies over 2..12


def test_evaluation_scenes_have_five_options_and_only_held_out_users(ml100k):
    scenes = choice_scenes(ml100k, "test", SMALL, evaluation=True)
    assert {len(s.options) for s in scenes} == {5}
    assert {s.user for s in scenes} <= set(ml100k.users("test").tolist())
    targets = np.bincount([s.target for s in scenes], minlength=5)
    assert targets.min() > 0.1 * len(scenes)  # the ground truth is not parked at one position


def test_scenes_are_seeded(ml100k):
    a = [s.to_dict() for s in choice_scenes(ml100k, "valid", SMALL)]
    b = [s.to_dict() for s in choice_scenes(ml100k, "valid", SMALL)]
    c = [s.to_dict() for s in choice_scenes(ml100k, "valid", SceneConfig(per_user=2, seed=1))]
    assert a == b and a != c


def test_single_source_takes_that_top_list_in_order(ml100k):
    config = SceneConfig(per_user=1, sources=("content",), option_range=(6, 6))
    emb = content_embeddings(ml100k, "tfidf")
    exposure = _Exposure(ml100k, config)
    for s in choice_scenes(ml100k, "train", config)[:20]:
        h = ml100k.history(s.user)
        memory = ml100k.inter_item[h.start : h.start + s.position][-config.memory :]
        ratio = ml100k.inter_watch_ratio[h.start : h.start + s.position][-config.memory :]
        watched = memory[ratio >= 0.3] if (ratio >= 0.3).any() else memory
        allowed = exposure.released(ml100k.inter_time[h.start + s.position])
        allowed[ml100k.inter_item[h]] = False
        pool = np.flatnonzero(allowed)
        top = pool[np.argsort(-(emb[pool] @ emb[watched].mean(0)), kind="stable")][:5]
        np.testing.assert_array_equal(np.delete(s.options, s.target), top)
        assert set(s.sources) == {"content", "target"}


def test_feed_scenes_show_the_next_real_interactions_with_their_real_reactions(ml100k):
    for s in feed_scenes(ml100k, "train", SceneConfig(per_user=1, feed_items=4))[:50]:
        h = ml100k.history(s.user)
        idx = np.arange(h.start + s.position, h.start + s.position + 4)
        np.testing.assert_array_equal(s.request.slate, ml100k.inter_item[idx])
        np.testing.assert_array_equal(s.watch_ratio, (ml100k.inter_rating[idx] - 1) / 4)
        np.testing.assert_array_equal(s.skipped, ml100k.inter_rating[idx] <= 2)
        assert s.request.mode == "feed" and len(s.request.history_items) == min(s.position, 30)


def test_without_a_release_year_items_first_seen_later_are_left_out(tiny_playtime_dataset):
    ds = load_dataset(tiny_playtime_dataset)
    exposure = _Exposure(ds, SceneConfig())
    assert exposure.release_year is None
    scenes = choice_scenes(ds, "train", SceneConfig(min_history=3, per_user=3, option_range=(2, 4)))
    assert len(scenes) > 10
    for s in scenes:
        t = ds.inter_time[ds.history(s.user).start + s.position]
        assert all(exposure.first_seen[i] <= t for k, i in enumerate(s.options) if k != s.target)


def test_config_errors_say_what_is_expected():
    with pytest.raises(ValueError, match="option_range"):
        SceneConfig(option_range=(1, 5))
    with pytest.raises(ValueError, match="sources must be"):
        SceneConfig(sources=("popular",))
    with pytest.raises(ValueError, match="content must be"):
        SceneConfig(content="bert")
