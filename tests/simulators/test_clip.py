"""The open_clip key-frame scorer (runs where open_clip imports: ``make test-video``; skipped in ``make test``, whose
CPU torch cannot import PyPI's CUDA torchvision). Hub tags are never contacted."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

try:
    import open_clip
except (ImportError, RuntimeError):
    pytest.skip("open_clip does not import here (run make test-video)", allow_module_level=True)

from simulators.perception.clip import OpenClipScorer  # noqa: E402
from simulators.perception.keyframes import key_frames  # noqa: E402

TINY = {  # a ViT-B-32-shaped config scaled down: random weights, the real code paths
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch
    from safetensors.torch import save_file

    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    torch.manual_seed(0)
    cfg = {"model_cfg": TINY, "preprocess_cfg": {"mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD),
                                                 "interpolation": "bicubic", "resize_mode": "shortest"}}
    tiny = open_clip.CLIP(**TINY)
    folder = tmp_path_factory.mktemp("tiny-clip")
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder, tiny


def test_local_dir_round_trip_gives_identical_embeddings(tiny_clip):
    import torch

    folder, tiny = tiny_clip
    scorer = OpenClipScorer(f"local-dir:{folder}")
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    from PIL import Image

    batch = torch.stack([scorer.preprocess(Image.fromarray(f)) for f in frames])
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(tiny.eval().encode_image(batch).float(), dim=-1).numpy()
    np.testing.assert_allclose(scorer.embed_images(frames), ref, atol=1e-6)
    scores = scorer.score(frames, "a red car")
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1 + 1e-6)
    keep, _ = key_frames(frames, "a red car", scorer, k=2)
    assert keep.tolist() == sorted(keep.tolist()) and len(keep) == 2


def test_hub_tags_are_refused_without_a_local_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="hub tags are never fetched"):
        OpenClipScorer("ViT-B-32", pretrained="laion2b_s34b_b79k")
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        OpenClipScorer(f"local-dir:{tmp_path}")
