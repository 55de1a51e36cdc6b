"""Perceive every item's video once: sampled frames, key frames by frame-title similarity, a caption with its
provenance, written as JSONL (one line per item) plus a card; re-running skips the items already done; a video that
is missing or cannot be decoded is counted and named (item id and path), never the end of the run.

Where the videos are: a ``.item`` column whose name contains "video" (e.g. ``video_path:token``), a path relative to
the dataset folder; else a ``videos/`` folder beside the atomic files with one file per item id (MicroLens-style,
``videos/<item id>.<mp4|avi|mkv|webm|mov>``).

Each record carries a key of the video's content and the models and settings that perceived it
(:func:`perception_key`): a re-run skips an item only when both are unchanged, and replaces its record otherwise.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from recsim_env.data import Dataset
from simulators.llm.prompts import item_facts
from simulators.perception.captions import CaptionError, SignalCaptioner
from simulators.perception.frames import VideoError, read_frames, sample_indices, video_info
from simulators.perception.keyframes import FrameScorer, key_frames

__all__ = ["PerceptionConfig", "PerceptionReport", "load_captions", "perceive", "video_paths"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")


@dataclass(frozen=True)
class PerceptionConfig:
    """frames: sampled per video (segment centres); key_frames: kept by similarity; size: shorter side of the frames
    the scorer and captioner see; reader: "decord", "pyav" or None (decord where installed)."""

    frames: int = 16
    key_frames: int = 5
    size: int = 224
    reader: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.key_frames <= self.frames:
            raise ValueError(f"Need 1 <= key_frames <= frames, got key_frames={self.key_frames}, frames={self.frames}.")
        if self.size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {self.size}.")


@dataclass
class PerceptionReport:
    done: int = 0  # items perceived in this run
    skipped: int = 0  # already in the JSONL with the same video content and models
    redone: int = 0  # in the JSONL, but the video or the models changed
    failed: list[dict] = field(default_factory=list)  # {"item_id", "path", "error"}
    missing: list[dict] = field(default_factory=list)  # items without a video file
    seconds: float = 0.0


def video_paths(dataset: Dataset) -> tuple[dict[int, Path], list[dict]]:
    """(item index -> video file, the items whose video is missing as {"item_id", "path"}), see the module docstring."""
    base = Path(dataset.path)
    column = next((name for name in dataset.item_fields if "video" in name.lower()), None)
    found: dict[int, Path] = {}
    missing: list[dict] = []
    if column is not None:
        values = dataset.item_fields[column]
        for i, value in enumerate(values):
            if not str(value).strip():
                missing.append({"item_id": dataset.item_tokens[i], "path": ""})
                continue
            path = base / str(value).strip()
            if path.is_file():
                found[i] = path
            else:
                missing.append({"item_id": dataset.item_tokens[i], "path": str(path)})
        return found, missing
    folder = base / "videos"
    if not folder.is_dir():
        raise FileNotFoundError(f"{dataset.name} has no video column in its .item file (e.g. video_path:token) and no "
                                f"videos/ folder at {folder}: no videos to perceive.")
    files = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES}
    for i, token in enumerate(dataset.item_tokens):
        if token in files:
            found[i] = files[token]
        else:
            missing.append({"item_id": token, "path": str(folder / f"{token}.mp4")})
    return found, missing


def perception_key(path: Path, models: str) -> str:
    """Cache key of one item's perception: the video file's content (SHA-1) and the scorer, captioner and settings."""
    digest = hashlib.sha1(models.encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def perceive(dataset: Dataset, out: str | Path, scorer: FrameScorer | None = None, captioner=None,
             config: PerceptionConfig | None = None, progress: bool = True) -> PerceptionReport:
    """Perceive the dataset's videos into ``out/perception.jsonl`` and ``out/CARD.md`` (module docstring).

    ``scorer`` None (no CLIP weights): the key frames are evenly spaced among the sampled ones and no scores are
    written (``clip_scores`` null); the provenance says so."""
    from tqdm.auto import tqdm

    config = config or PerceptionConfig()
    captioner = captioner or SignalCaptioner()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "perception.jsonl"
    done: dict[str, str] = {}  # item id -> key of its record
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                done[record["item_id"]] = record.get("key", "")
    paths, missing = video_paths(dataset)
    report = PerceptionReport(missing=missing)
    models = f"{scorer.name if scorer else 'none'}|{captioner!r}|{json.dumps(asdict(config), sort_keys=True)}"  # repr: settings
    start = time.perf_counter()
    redone: set[str] = set()
    with jsonl.open("a") as sink:
        for i, path in tqdm(sorted(paths.items()), desc="perceive", disable=not progress):
            token = dataset.item_tokens[i]
            key = perception_key(path, models)
            if done.get(token) == key:
                report.skipped += 1
                continue
            if token in done:  # the video or the models changed: perceived again, the old record dropped below
                redone.add(token)
            try:
                info = video_info(path, config.reader)
                idx = sample_indices(info.n_frames, config.frames)
                frames = read_frames(path, idx, config.size, config.reader)
            except VideoError as err:
                report.failed.append({"item_id": token, "path": str(path), "error": str(err)})
                continue
            title, facts = item_facts(dataset, i)
            metadata = "; ".join(facts)
            if scorer is None:
                keep, scores = sample_indices(len(frames), config.key_frames), None
            else:
                keep, scores = key_frames(frames, title, scorer, config.key_frames)
            try:
                caption, provenance = captioner.caption(title, metadata, frames[keep], info.duration)
            except CaptionError as err:
                report.failed.append({"item_id": token, "path": str(path), "error": str(err)})
                continue
            record = {"item_id": token, "key": key, "path": str(path), "frames": idx.tolist(), "key_frames": idx[keep].tolist(),
                      "clip_scores": None if scores is None else np.round(scores, 6).tolist(), "caption": caption,
                      "provenance": {"scorer": scorer.name if scorer else "none (evenly spaced key frames)", **provenance,
                                     "config": asdict(config)}}
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            report.done += 1
    if redone:  # keep only each item's newest record
        lines = [json.loads(x) for x in jsonl.read_text().splitlines() if x.strip()]
        newest = {r["item_id"]: r for r in lines}
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in newest.values()))
    report.redone = len(redone)
    report.seconds = time.perf_counter() - start
    (out / "CARD.md").write_text("\n".join([
        f"# Item perception of {dataset.name}", "",
        f"Scorer: {scorer.name if scorer else 'none (evenly spaced key frames)'}; captioner: {captioner.name}; {config.frames} frames sampled (segment centres), "
        f"{config.key_frames} key frames, shorter side {config.size} px.", "",
        f"This run: {report.done} perceived ({report.redone} again: video or models changed), {report.skipped} already "
        f"done, {len(report.failed)} failed, "
        f"{len(report.missing)} without a video, {report.seconds:.1f} s.", "",
        *(f"- failed: item {f['item_id']} ({f['path']}): {f['error']}" for f in report.failed),
        *(f"- missing: item {m['item_id']} ({m['path'] or 'no path given'})" for m in report.missing),
    ]) + "\n")
    return report


def load_captions(out: str | Path, dataset: Dataset) -> dict[int, str]:
    """Item index -> caption from a :func:`perceive` output folder (items of other datasets are refused by id)."""
    jsonl = Path(out) / "perception.jsonl"
    if not jsonl.is_file():
        raise FileNotFoundError(f"No perception.jsonl in {out}: run `recsim perceive --dataset ... --out {out}` first.")
    index = {token: i for i, token in enumerate(dataset.item_tokens)}
    captions, unknown = {}, []
    for n, line in enumerate(jsonl.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            token, caption = record["item_id"], record["caption"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{jsonl}, line {n}: not a perception record with item_id and caption ({err}).") from None
        if token in index:
            captions[index[token]] = str(caption)
        else:
            unknown.append(token)
    if unknown:
        raise ValueError(f"{jsonl} holds {len(unknown)} item id(s) that {dataset.name} does not have (e.g. {unknown[:3]}): "
                         f"it was perceived from another dataset.")
    return captions
