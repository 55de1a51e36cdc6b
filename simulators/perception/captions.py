"""Item captions that the LLM user reads beside the item's other facts (VRAgent-R1: a ~35-word caption of the key
frames written by a multimodal LLM).

:class:`SignalCaptioner` is the default where no vision weights exist (as on the machines this project is built on):
it writes the caption from the item's title and metadata plus cheap visual signals measured on the frames themselves
(duration, scene cuts, brightness, dominant colours) and says so in its provenance. It never names what a model
would have to recognise, so no random-weight model's guess can reach a caption.

:class:`VLMCaptioner` asks a multimodal LLM from a local directory (transformers ``AutoModelForImageTextToText`` and
``AutoProcessor``: SmolVLM / Idefics3, LLaVA, Qwen2-VL style models whose processor's chat template takes image
entries) for a caption of the key frames, prompted with the title; greedy, trimmed to the word budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["COLOURS", "CaptionError", "SignalCaptioner", "VLMCaptioner", "trim_words", "visual_signals"]

# named colours for "dominant colours" (RGB); the nearest name wins per pixel
COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (200, 30, 30),
    "orange": (240, 140, 20), "yellow": (240, 220, 40), "green": (40, 160, 50), "blue": (40, 80, 200),
    "purple": (130, 50, 160), "brown": (120, 80, 40), "pink": (240, 150, 180),
}


class CaptionError(RuntimeError):
    """A captioner gave no usable caption (the message says what it gave)."""


def trim_words(text: str, budget: int) -> str:
    """``text`` cut to at most ``budget`` words (an ellipsis marks a cut)."""
    words = text.split()
    return " ".join(words) if len(words) <= budget else " ".join(words[:budget]).rstrip(".,;:") + "..."


def visual_signals(frames: np.ndarray, duration: float, cut_threshold: float = 0.35) -> dict:
    """Cheap, model-free signals of ``(n, H, W, 3)`` uint8 frames sampled over a video of ``duration`` seconds.

    brightness: mean luma in [0, 1]; cuts: consecutive sampled frames whose colour histograms differ by more than
    ``cut_threshold`` (total variation distance; a lower bound on the video's scene cuts); colours: the two named
    colours covering most pixels, with their shares.
    """
    f = frames.astype(np.float32)
    luma = (0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]) / 255.0
    bins = (frames // 64).astype(np.int64)  # 4 levels per channel: 64 colour bins
    codes = bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]
    hists = np.stack([np.bincount(c.ravel(), minlength=64) / c.size for c in codes])
    changes = 0.5 * np.abs(np.diff(hists, axis=0)).sum(1)
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], dtype=np.float32)
    small = f[:, ::4, ::4].reshape(-1, 3)
    nearest = np.argmin(((small[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    share = np.bincount(nearest, minlength=len(names)) / len(nearest)
    top = np.argsort(-share)[:2]
    return {"duration_s": float(duration), "brightness": float(luma.mean()), "cuts": int((changes > cut_threshold).sum()),
            "colours": [(names[i], float(share[i])) for i in top if share[i] > 0]}


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "a video of unknown length"
    if seconds < 60:
        return f"a {seconds:.0f}-second video"
    return f"a {int(seconds // 60)} min {int(seconds % 60)} s video"


@dataclass
class SignalCaptioner:
    """Caption from metadata and measured visual signals, no vision model (see the module docstring)."""

    word_budget: int = 35
    name: str = "signals"

    def caption(self, title: str, metadata: str, frames: np.ndarray, duration: float) -> tuple[str, dict]:
        """(caption of at most ``word_budget`` words, provenance)."""
        s = visual_signals(frames, duration)
        light = "dark" if s["brightness"] < 0.3 else "bright" if s["brightness"] > 0.65 else "evenly lit"
        colours = " and ".join(name for name, _ in s["colours"])
        cuts = f"{s['cuts']} scene cut{'s' if s['cuts'] != 1 else ''} among {len(frames)} sampled frames"
        head = f"{title} ({metadata})" if metadata else title
        text = trim_words(f"{head}: {_duration(s['duration_s'])}, {light}, mostly {colours}, {cuts}.", self.word_budget)
        provenance = {"captioner": self.name, "model": None, "frames": len(frames), "signals": s,
                      "note": "no vision model: metadata and measured visual signals only"}
        return text, provenance


@dataclass
class VLMCaptioner:
    """A multimodal LLM's caption of the key frames (see the module docstring); ``model_dir`` is a local directory."""

    model_dir: str
    word_budget: int = 35
    max_new_tokens: int = 64
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        from pathlib import Path

        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(self.model_dir).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--captioner {self.model_dir!r} is not a local model directory (no config.json). Give "
                                    f"a saved image-text-to-text model (e.g. SmolVLM), or leave it unset for the signal captioner.")
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=getattr(torch, self.dtype))
        self.model.to(self.device).eval()
        self.name = f"vlm:{path.name}"

    def prompt(self, title: str, metadata: str, n_frames: int) -> str:
        about = f'"{title}"' + (f" ({metadata})" if metadata else "")
        return (f"These are {n_frames} key frames, in time order, of the video of {about}. Describe what the video shows "
                f"in at most {self.word_budget} words.")

    def caption(self, title: str, metadata: str, frames: np.ndarray, duration: float) -> tuple[str, dict]:
        """(caption of at most ``word_budget`` words, provenance); :class:`CaptionError` when it has no words."""
        import torch
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        question = self.prompt(title, metadata, len(images))
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        inputs = self.processor(text=[text], images=[images], return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        answer = " ".join(self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].split())
        if sum(ch.isalpha() for ch in answer) < 3:
            raise CaptionError(f"{self.name} gave no usable caption for {title!r}: {answer!r}.")
        provenance = {"captioner": self.name, "model": str(self.model_dir), "model_type": self.model.config.model_type,
                      "frames": len(images), "prompt": question, "max_new_tokens": self.max_new_tokens}
        return trim_words(answer, self.word_budget), provenance
