"""Load a CLIP or SigLIP model and its tokenizer by Hugging Face Hub id or local directory.

Every caller (pipelines, tests, the offline demo with tiny models) goes through
:func:`load_backbone`, so a pretrained checkpoint and a tiny test model take the same path.
Feature helpers return plain, *un-normalised* projected features whatever the installed
transformers returns (transformers >= 5 wraps them in ``BaseModelOutputWithPooling``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, CLIPModel, SiglipModel

Family = Literal["clip", "siglip"]
SUPPORTED_FAMILIES: tuple[str, ...] = get_args(Family)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
DEFAULT_NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "clip": (CLIP_MEAN, CLIP_STD),
    "siglip": (SIGLIP_MEAN, SIGLIP_STD),
}
PREPROCESSOR_FILE = "preprocessor_config.json"
_MODEL_CLASSES = {"clip": CLIPModel, "siglip": SiglipModel}
# A tokenizer without a real limit reports ~1e30 as model_max_length.
_NO_LIMIT = 1_000_000


class BackboneLoadError(RuntimeError):
    """The model could not be loaded; the message says which one and how to fix it."""


@dataclass
class Backbone:
    family: Family
    model: transformers.CLIPModel | transformers.SiglipModel
    tokenizer: transformers.PreTrainedTokenizerBase
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    image_size: int
    patch_size: int
    embed_dim: int
    source: str
    text_padding: str
    max_text_length: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


# --------------------------------------------------------------------------- loading


class _DefaultConfigTokenIdNoise(logging.Filter):
    """Drops a spurious transformers 5 warning about SigLIP's *default* text config.

    Serialising a SigLIP config diffs it against ``SiglipTextConfig()``, whose own defaults
    (bos 49406, eos 49407, vocab 32000) fail its token-id validation; it says nothing about the model.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("_token_id must be `None` or an integer within the vocabulary" in message and "(between 0 and 31999)" in message)


@contextlib.contextmanager
def quiet_default_config_warnings() -> Iterator[None]:
    logger = logging.getLogger("transformers.configuration_utils")
    noise = _DefaultConfigTokenIdNoise()
    logger.addFilter(noise)
    try:
        yield
    finally:
        logger.removeFilter(noise)



def _offline_from_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _looks_like_path(name: str) -> bool:
    """True when ``name`` is meant as a filesystem path rather than a Hub id (``org/name``)."""
    if Path(name).expanduser().exists():
        return True
    return name.startswith((".", "/", "~", "\\")) or "\\" in name or name.count("/") > 1 or os.path.isabs(name)


def _download_hint(name: str) -> str:
    local = f"data/06_models/{name.rstrip('/').split('/')[-1]}"
    return (
        f"download it where there is network (`hf download {name} --local-dir {local}`; "
        f"`huggingface-cli download` on older huggingface_hub) and set the model's `backbone` parameter to that directory"
    )


def _missing_hub_model_message(name: str, error: BaseException, local_files_only: bool) -> str:
    text = str(error)
    if local_files_only:
        reason = "the Hub was not tried (offline mode: HF_HUB_OFFLINE=1 or local_files_only=True)"
    elif "couldn't connect" in text.lower() or isinstance(error, ConnectionError):
        reason = "the Hugging Face Hub was unreachable"
    elif "not a valid model identifier" in text or type(error).__name__ == "RepositoryNotFoundError":
        reason = "the Hub has no such repository (or it needs a token)"
    else:
        reason = "the Hugging Face Hub was unreachable or refused the request"
    return (
        f"Model '{name}' was not found locally (no such directory, not in the Hugging Face cache) and {reason}: "
        f"{_download_hint(name)}."
    )


def _missing_path_message(name: str) -> str:
    return (
        f"Model directory '{name}' does not exist (resolved to {Path(name).expanduser().resolve()}): "
        f"build or download the model there, or set the model's `backbone` parameter to an existing "
        f"model directory or a Hub id such as openai/clip-vit-base-patch16."
    )


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, ValueError]
    try:  # huggingface_hub is a transformers dependency, but keep the loader importable without it
        from huggingface_hub import errors as hub_errors

        errors.append(hub_errors.HfHubHTTPError)
    except (ImportError, AttributeError):  # pragma: no cover - depends on the installed version
        pass
    return tuple(errors)


def _read_preprocessor_json(name: str, is_path: bool, local_files_only: bool) -> dict | None:
    """The model's ``preprocessor_config.json`` as a dict, or None when there is none to be had."""
    path: Path | None = None
    if is_path:
        candidate = Path(name).expanduser() / PREPROCESSOR_FILE
        path = candidate if candidate.is_file() else None
    else:
        try:
            import huggingface_hub

            cached = huggingface_hub.try_to_load_from_cache(repo_id=name, filename=PREPROCESSOR_FILE)
            if isinstance(cached, str):
                path = Path(cached)
            elif not local_files_only and cached is None:  # not cached, and not known to be absent
                path = Path(huggingface_hub.hf_hub_download(repo_id=name, filename=PREPROCESSOR_FILE))
        except Exception:  # noqa: BLE001 - any failure here only means "use the family defaults"
            path = None
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _triple(value: object) -> tuple[float, float, float] | None:
    if isinstance(value, (int, float)):
        return (float(value),) * 3  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return tuple(float(v) for v in value)  # type: ignore[return-value]
    return None


def _first_int(value: object) -> int:
    """``image_size``/``patch_size`` may be an int or an (h, w) pair; the models here are square."""
    if isinstance(value, (list, tuple)):
        return int(value[0])
    return int(value)  # type: ignore[arg-type]


def _max_text_length(config: transformers.PretrainedConfig, tokenizer: transformers.PreTrainedTokenizerBase) -> int:
    positions = int(config.text_config.max_position_embeddings)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < _NO_LIMIT:
        return min(positions, tok_max)
    return positions


@dataclass(frozen=True)
class _LoadTarget:
    """Where :func:`load_backbone` reads from, and how its failures are reported."""

    name: str  # as the caller gave it, for messages
    load_from: str  # what ``from_pretrained`` reads: the expanded directory or the Hub id
    is_path: bool
    local_files_only: bool
    hub_errors: tuple[type[BaseException], ...]


def _model_directory(name: str) -> str:
    """The local model directory ``name`` points at, checked to hold a ``config.json``."""
    directory = Path(name).expanduser()
    if not directory.exists():
        raise BackboneLoadError(_missing_path_message(name))
    if not directory.is_dir() or not (directory / "config.json").is_file():
        raise BackboneLoadError(
            f"'{name}' is not a Hugging Face model directory (no config.json in it): point the model's "
            f"`backbone` parameter at a directory written by save_pretrained or `hf download --local-dir`."
        )
    return str(directory)


def _load_target(name: str, local_files_only: bool | None) -> _LoadTarget:
    if local_files_only is None:
        local_files_only = _offline_from_env()
    is_path = _looks_like_path(name)
    hub_errors = _hub_errors()
    load_from = _model_directory(name) if is_path else name
    return _LoadTarget(name, load_from, is_path, local_files_only, hub_errors)


def _load_config(target: _LoadTarget) -> transformers.PretrainedConfig:
    try:
        with quiet_default_config_warnings():
            return AutoConfig.from_pretrained(target.load_from, local_files_only=target.local_files_only)
    except target.hub_errors as error:
        if target.is_path:
            raise BackboneLoadError(f"Could not read the model config in '{target.name}': {error}".strip()) from None
        raise BackboneLoadError(_missing_hub_model_message(target.name, error, target.local_files_only)) from None


def _detect_family(config: transformers.PretrainedConfig, name: str, family: Family | None) -> Family:
    """The config's model type, checked to be supported and to match ``family`` when one was requested."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_FAMILIES:
        raise BackboneLoadError(
            f"'{name}' is a '{model_type}' model; only {' and '.join(SUPPORTED_FAMILIES)} models are supported."
        )
    if family is not None and family != model_type:
        raise BackboneLoadError(
            f"'{name}' is a '{model_type}' model but family '{family}' was requested; "
            f"supported families are {', '.join(SUPPORTED_FAMILIES)} (leave family unset to detect it)."
        )
    return model_type  # type: ignore[return-value]


def _load_weights_and_tokenizer(
    target: _LoadTarget, config: transformers.PretrainedConfig, detected: Family
) -> tuple[transformers.CLIPModel | transformers.SiglipModel, transformers.PreTrainedTokenizerBase]:
    name, load_from, local_files_only = target.name, target.load_from, target.local_files_only
    try:
        with quiet_default_config_warnings():
            # use_kernels=False: transformers 5.25 turned Hub kernels on by default; they are fetched from
            # the Hub (no network here), re-kernelize on every train()/eval() and reject the meta device.
            model = _MODEL_CLASSES[detected].from_pretrained(
                load_from, config=config, attn_implementation="sdpa", dtype=torch.float32,
                local_files_only=local_files_only, use_kernels=False,
            )
            tokenizer = AutoTokenizer.from_pretrained(load_from, local_files_only=local_files_only)
    except ImportError as error:  # e.g. the real SigLIP tokenizer is SentencePiece-based
        first_line = " ".join(str(error).split()).split(". ")[0] or type(error).__name__
        package = "sentencepiece" if "sentencepiece" in str(error).lower() else "the missing package"
        raise BackboneLoadError(
            f"Loading '{name}' needs a package that is not installed ({first_line.rstrip('.')}): "
            f"install {package} (`pip install {package if package == 'sentencepiece' else '<package>'}`) and retry."
        ) from None
    except target.hub_errors as error:
        if not target.is_path and isinstance(error, OSError):
            raise BackboneLoadError(_missing_hub_model_message(name, error, local_files_only)) from None
        raise BackboneLoadError(f"Could not load the {detected} weights or tokenizer from '{name}': {error}") from None
    return model, tokenizer


def _image_normalisation(
    target: _LoadTarget, detected: Family
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The model's own ``image_mean``/``image_std`` where its preprocessor config has them, else the family's."""
    mean, std = DEFAULT_NORMALISATION[detected]
    preprocessor = _read_preprocessor_json(target.load_from, target.is_path, target.local_files_only)
    if preprocessor is not None:
        mean = _triple(preprocessor.get("image_mean")) or mean
        std = _triple(preprocessor.get("image_std")) or std
    return mean, std


def _embed_dim(
    detected: Family, model: transformers.CLIPModel | transformers.SiglipModel, vision: transformers.PretrainedConfig
) -> int:
    """CLIP's image projection width; SigLIP has no image projection: image features are the pooling head's output."""
    if detected == "clip":
        return int(model.visual_projection.out_features)
    return int(vision.hidden_size)


def load_backbone(name_or_path: str, family: Family | None = None, local_files_only: bool | None = None) -> Backbone:
    """Load a CLIP or SigLIP model (sdpa attention, float32) and its tokenizer.

    ``name_or_path`` is a Hub id (``openai/clip-vit-base-patch16``) or a local directory written by
    ``save_pretrained`` / ``hf download --local-dir``. ``family`` is detected from the config when
    None. ``local_files_only`` None means: follow the ``HF_HUB_OFFLINE`` environment variable.
    """
    name = str(name_or_path)
    if family is not None and family not in SUPPORTED_FAMILIES:
        raise BackboneLoadError(f"Unknown backbone family '{family}'; supported families are {', '.join(SUPPORTED_FAMILIES)}.")
    target = _load_target(name, local_files_only)
    config = _load_config(target)
    detected = _detect_family(config, name, family)
    model, tokenizer = _load_weights_and_tokenizer(target, config, detected)
    mean, std = _image_normalisation(target, detected)
    vision = config.vision_config
    return Backbone(
        family=detected,
        model=model,
        tokenizer=tokenizer,
        image_mean=mean,
        image_std=std,
        image_size=_first_int(vision.image_size),
        patch_size=_first_int(vision.patch_size),
        embed_dim=_embed_dim(detected, model, vision),
        source=name,
        text_padding="max_length" if detected == "siglip" else "longest",
        max_text_length=_max_text_length(config, tokenizer),
    )


# --------------------------------------------------------------------------- features


def tokenize(backbone: Backbone, texts: Sequence[str], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Token tensors ready for ``model.get_text_features(**tokens)``.

    SigLIP pools the last position, so its texts are padded to ``max_text_length`` and given no
    attention mask (the way SigLIP was trained and its own tokenizer returns them). CLIP pools
    the EOS position and gets ``padding="longest"`` plus the attention mask.
    """
    if isinstance(texts, str):
        texts = [texts]
    encoded = backbone.tokenizer(
        list(texts),
        padding=backbone.text_padding,
        truncation=True,
        max_length=backbone.max_text_length,
        return_tensors="pt",
    )
    keys = ("input_ids",) if backbone.family == "siglip" else ("input_ids", "attention_mask")
    return {key: encoded[key].to(device) for key in keys if key in encoded}


def _pooled(output: object) -> torch.Tensor:
    """The projected feature from whatever ``get_*_features`` returned."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(output, (tuple, list)) and len(output) > 1 and isinstance(output[1], torch.Tensor):
        return output[1]  # (last_hidden_state, pooler_output, ...) with return_dict=False
    raise TypeError(f"Cannot find the pooled features in a {type(output).__name__}")


def text_features(backbone: Backbone, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """``(N, D)`` projected, un-normalised text features, computed and returned where the model's weights are.

    The tokens go to the model's device, never to a device of the caller's choosing: a text
    tower still on the host cannot read token ids already on a GPU. Runs under whatever grad
    mode the caller has set.
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    target = backbone.device
    if not texts:
        return torch.empty(0, backbone.embed_dim, device=target)
    chunks = []
    for start in range(0, len(texts), max(1, int(batch_size))):
        tokens = tokenize(backbone, texts[start : start + batch_size], device=target)
        chunks.append(_pooled(backbone.model.get_text_features(**tokens)))
    return torch.cat(chunks, dim=0)


def image_features(backbone: Backbone, pixel_values: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` projected, un-normalised image features of a normalised ``(B, 3, H, W)`` batch."""
    parameter = next(backbone.model.parameters())
    pixels = pixel_values.to(device=parameter.device, dtype=parameter.dtype)
    return _pooled(backbone.model.get_image_features(pixel_values=pixels))


# --------------------------------------------------------------------------- saving


def write_preprocessor_config(out: Path, family: str, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
    """``preprocessor_config.json`` as the HF image processor of ``family`` writes it: what :func:`load_backbone` reads back."""
    common = {"do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(mean), "image_std": list(std)}
    if family == "clip":
        config = {
            "image_processor_type": "CLIPImageProcessor", **common, "resample": 3, "size": {"shortest_edge": image_size},
            "do_center_crop": True, "crop_size": {"height": image_size, "width": image_size}, "do_convert_rgb": True,
        }
    else:
        config = {"image_processor_type": "SiglipImageProcessor", **common, "resample": 2, "size": {"height": image_size, "width": image_size}}
    (Path(out) / PREPROCESSOR_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def save_backbone(backbone: Backbone, out: Path) -> Path:
    """Weights (safetensors), config, tokenizer and image preprocessing of ``backbone`` into ``out``, loadable by :func:`load_backbone`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_default_config_warnings():
        backbone.model.save_pretrained(out, safe_serialization=True)
    backbone.tokenizer.save_pretrained(out)
    write_preprocessor_config(out, backbone.family, backbone.image_size, backbone.image_mean, backbone.image_std)
    return out
