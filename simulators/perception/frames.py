"""Video frames for item perception: segment-centre uniform sampling, read by decord or, where decord has no wheel
(anything but x86_64 Linux), by PyAV.

VRAgent-R1's Item Perception agent samples frames uniformly over the whole video: the video's ``n`` frames are cut
into ``k`` equal segments and the centre frame of each is taken (:func:`sample_indices`), so the samples cover the
beginning and the end alike. Frames come back as ``(k, height, width, 3)`` uint8 RGB arrays, resized to ``size``
(shorter side, aspect kept) when asked.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["READERS", "VideoError", "VideoInfo", "read_frames", "sample_indices", "video_info"]

READERS = ("decord", "pyav")


class VideoError(RuntimeError):
    """A video could not be opened or decoded (the message names the file and the reader)."""


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps if self.fps > 0 else float("nan")


def sample_indices(n_frames: int, k: int) -> np.ndarray:
    """The centre frame of each of ``k`` equal segments of ``n_frames`` frames (all frames when there are fewer)."""
    if n_frames < 1 or k < 1:
        raise ValueError(f"sample_indices needs n_frames >= 1 and k >= 1, got {n_frames} and {k}.")
    if k >= n_frames:
        return np.arange(n_frames)
    return np.floor((np.arange(k) + 0.5) * n_frames / k).astype(np.int64)


def default_reader() -> str:
    """decord where it is installed, else PyAV."""
    if importlib.util.find_spec("decord") is not None:
        return "decord"
    if importlib.util.find_spec("av") is not None:
        return "pyav"
    raise ImportError("Reading videos needs decord (x86_64 Linux) or PyAV: pip install 'recsim-env[video]' "
                      "(or pip install decord av).")


def _check(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"No video file at {path}.")
    return path


def video_info(path: str | Path, reader: str | None = None) -> VideoInfo:
    """Frame count, frame rate and size of the video at ``path``."""
    path, reader = _check(path), reader or default_reader()
    try:
        if reader == "decord":
            import decord

            vr = decord.VideoReader(str(path))
            h, w = vr[0].shape[:2]
            return VideoInfo(len(vr), float(vr.get_avg_fps()), int(w), int(h))
        import av

        with av.open(str(path)) as box:
            stream = box.streams.video[0]
            n = stream.frames or sum(1 for _ in box.decode(stream))
            return VideoInfo(int(n), float(stream.average_rate or 0.0), int(stream.width), int(stream.height))
    except VideoError:
        raise
    except Exception as err:  # decoders raise their own types (decord.DECORDError, av.InvalidDataError, ...)
        raise VideoError(f"{reader} could not read {path}: {type(err).__name__}: {err}") from None


def _resize(frames: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return frames
    from PIL import Image

    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([np.asarray(Image.fromarray(f).resize(shape, Image.BILINEAR)) for f in frames])


def read_frames(path: str | Path, indices: np.ndarray, size: int | None = None, reader: str | None = None) -> np.ndarray:
    """Frames ``indices`` of the video at ``path`` as ``(len(indices), H, W, 3)`` uint8 RGB (shorter side ``size``)."""
    path, reader = _check(path), reader or default_reader()
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {reader!r}.")
    indices = np.asarray(indices, dtype=np.int64)
    try:
        if reader == "decord":
            import decord

            frames = decord.VideoReader(str(path)).get_batch(list(indices)).asnumpy()
        else:
            import av

            wanted = {int(i): j for j, i in enumerate(indices)}
            out: list[np.ndarray | None] = [None] * len(indices)
            n = -1
            with av.open(str(path)) as box:
                for n, frame in enumerate(box.decode(video=0)):
                    if n in wanted:
                        out[wanted[n]] = frame.to_ndarray(format="rgb24")
                    if n >= indices.max():
                        break
            missing = [int(i) for i, f in zip(indices, out) if f is None]
            if missing:
                raise VideoError(f"pyav found no frames {missing} in {path} (it decoded {n + 1}).")
            frames = np.stack(out)
    except VideoError:
        raise
    except Exception as err:
        raise VideoError(f"{reader} could not decode frames of {path}: {type(err).__name__}: {err}") from None
    return _resize(frames, size)
