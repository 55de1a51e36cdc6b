"""Frame-title similarity with open_clip (the key-frame scorer of VRAgent-R1's Item Perception agent).

Weights come from local files only, never a hub tag: ``local-dir:DIR`` (open_clip's own layout:
``open_clip_config.json`` + ``open_clip_model.safetensors``) or a model name such as ``ViT-B-32`` with
``pretrained=<local checkpoint file>``. open_clip needs torchvision, whose PyPI wheels are CUDA builds that do not
import beside the CPU torch of the main virtualenv: ``make video-venv`` builds ``.venv-video`` where they do (see
the Makefile); the rest of perception (frames, captions, the JSONL) needs neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["OpenClipScorer"]


class OpenClipScorer:
    """Cosine similarity of each frame's CLIP image embedding to the text's; ``name`` records the model."""

    def __init__(self, model: str, pretrained: str | None = None, device: str = "cpu") -> None:
        try:
            import open_clip
        except (ImportError, RuntimeError) as err:  # torchvision's CUDA wheel raises RuntimeError beside a CPU torch
            raise ImportError(f"open_clip does not import here ({type(err).__name__}: {err}); run in the video "
                              f"virtualenv (make video-venv) or leave the CLIP scorer out.") from None
        if model.startswith("local-dir:"):
            folder = Path(model[len("local-dir:"):]).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise FileNotFoundError(f"{folder} has no open_clip_config.json: not an open_clip local-dir model.")
            spec, weights = f"local-dir:{folder}", None
        else:
            if pretrained is None or not Path(pretrained).expanduser().is_file():
                raise FileNotFoundError(f"open_clip model {model!r} needs pretrained=<a local checkpoint file> (got "
                                        f"{pretrained!r}); hub tags are never fetched. Or give local-dir:DIR.")
            spec, weights = model, str(Path(pretrained).expanduser())
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(spec, pretrained=weights, device=device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(spec)
        self.device = device
        self.name = f"open_clip:{model}" + (f" ({Path(weights).name})" if weights else "")

    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        """(n, d) unit-norm image embeddings of ``(n, H, W, 3)`` uint8 frames."""
        import torch
        from PIL import Image

        batch = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames]).to(self.device)
        with torch.inference_mode():
            x = self.model.encode_image(batch).float()
        return torch.nn.functional.normalize(x, dim=-1).cpu().numpy()

    def embed_text(self, text: str) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = self.model.encode_text(self.tokenizer([text]).to(self.device)).float()
        return torch.nn.functional.normalize(x, dim=-1)[0].cpu().numpy()

    def score(self, frames: np.ndarray, text: str) -> np.ndarray:
        return self.embed_images(frames) @ self.embed_text(text)
