import numpy as np
import pytest

from recsim_env.features import item_features, taste_profiles
from simulators.training.labels import DataLabeller, LabelConfig
from simulators.training.scenes import SceneConfig, feed_scenes


@pytest.fixture(scope="module")
def labelled(ml100k):
    labeller = DataLabeller(ml100k)
    scenes = feed_scenes(ml100k, "train", SceneConfig(per_user=1))
    return labeller, scenes, labeller.label(scenes)


def test_every_skip_gets_one_label_and_nothing_else_does(labelled):
    _, scenes, labels = labelled
    for s, row in zip(scenes, labels):
        assert [lab is not None for lab in row] == s.skipped.tolist()
    classes = {lab.label for row in labels for lab in row if lab}
    assert classes == {"content-driven", "algorithm-driven", "user-driven"}


def test_labels_follow_the_documented_rules_in_order(labelled, ml100k):
    labeller, scenes, labels = labelled
    feats, c = item_features(ml100k), labeller.config
    for s, row in zip(scenes, labels):
        r = s.request
        pos = taste_profiles(feats, r.history_items[None], r.history_watch_ratio[None], r.history_skipped[None], c.decay)[0][0]
        for k, lab in enumerate(row):
            if lab is None:
                continue
            item = int(r.slate[k])
            rate, n = labeller.skip_rate(item, s.user, s.position + k)
            poor = n >= c.min_count and rate >= labeller.poor_rate
            recent = np.concatenate([r.history_items[-c.repeat_window:], r.slate[:k]]).astype(int)
            misfit = feats.text[item] @ pos < labeller.fit_threshold or (
                feats.text[item].any() and (feats.text[recent] @ feats.text[item] >= c.repeat_cosine).any())
            expected = "content-driven" if poor else "algorithm-driven" if misfit else "user-driven"
            assert lab.label == expected and lab.provenance.startswith("rule"), (lab, rate, n)


def test_the_labelled_user_is_left_out_of_the_item_statistics(ml100k):
    labeller = DataLabeller(ml100k)
    user = int(ml100k.users("train")[0])
    h = ml100k.history(user)
    item = int(ml100k.inter_item[h.start])
    train = ml100k.interactions_of("train")
    others = train[(ml100k.inter_item[train] == item) & (ml100k.inter_user[train] != user)]
    rate, n = labeller.skip_rate(item, user, 0)
    assert n == len(others) and rate == pytest.approx((ml100k.inter_watch_ratio[others] < 0.3).mean())


def test_label_config_errors():
    with pytest.raises(ValueError, match="poor_quantile must be in"):
        LabelConfig(poor_quantile=1.5)


def test_teacher_llm_labels_skips_with_provenance(ml100k, tiny_llm):
    from simulators.llm import LLMUserSimulator
    from simulators.training.labels import TeacherLabeller, labeller

    teacher = LLMUserSimulator(model=tiny_llm, dtype="float32", min_option_mass=0.0)
    lab = labeller(ml100k, teacher=teacher)
    assert isinstance(lab, TeacherLabeller) and isinstance(labeller(ml100k), DataLabeller)
    scenes = [s for s in feed_scenes(ml100k, "train", SceneConfig(per_user=1)) if s.skipped.any()][:3]
    labels = lab.label(scenes)
    probs = teacher.reason_probs([s.request for s in scenes])
    for s, row, p in zip(scenes, labels, probs):
        assert [x is not None for x in row] == s.skipped.tolist()
        for k, x in enumerate(row):
            if x is not None:
                assert x.index == int(np.argmax(p[k])) and x.provenance.startswith("teacher LLMUserSimulator(")
    other = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, taxonomy=(("boring", "dull"), ("late", "no time")))
    with pytest.raises(ValueError, match="must be bound to a dataset and use the classes"):
        TeacherLabeller(other)
