"""A-CLIP (Yang et al., ICCV 2023): fine-tune CLIP's vision tower on the most attended half of its tokens.

An EMA (momentum) copy of the vision tower sees each augmented image whole, without gradients;
its [CLS]→patch attention, averaged over layers and heads, scores the patches. The online tower
then runs only on [CLS] plus the top ``keep_ratio`` patch tokens (selected after the position
embeddings are added, so each kept token still knows where it came from), which is where the
speed comes from. The objective is the image–class-text contrastive loss and cross-entropy on
the head, plus a BYOL-style term in which a small predictor maps the online embedding of the
masked view to the EMA embedding of the full view (of the other view when ``num_views: 2``),
and optionally SimCLR between two masked views.

The attention scores are taken in the EMA pass only, from the q/k projections each layer
computes anyway (forward hooks), so every attention call, online and EMA, stays on SDPA. Any
patch grid works (7×7 for B/32, 14×14 for B/16, 16×16 for L/14, 8×8 for the demo model).
Evaluation always uses the online tower on all tokens.

The EMA pass is a full forward on every token each step, which caps the speed-up at 50 % tokens
near 1.2× (2.5 forward-equivalents against 3). ``ema_image_scale`` < 1 lets the EMA tower look at
the same view downscaled (0.5: a quarter of the tokens, position embeddings interpolated); its
attention map is upsampled back to the full patch grid before the top patches are picked, so the
online tower still sees full-resolution tokens. At 0.5 the bound becomes ~1.7× for B/16.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from har_kedro.models.backbones import Backbone
from har_kedro.models.classifier import ClassHead, ImageClassifier
from har_kedro.models.losses import contrastive_loss, cross_entropy_loss
from har_kedro.config.aclip import AclipConfigError, AclipSettings
from har_kedro.config.augment import AugmentConfig
from har_kedro.models.augment import prepare_eval_batch, prepare_train_batch

# --------------------------------------------------------------------------- token selection


def num_kept(num_patches: int, keep_ratio: float) -> int:
    """Patch tokens the online tower keeps: ``round(keep_ratio × N)``, at least one."""
    return max(1, min(num_patches, int(math.floor(keep_ratio * num_patches + 0.5))))


def top_patches(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, k)`` indices of the ``k`` highest-scoring patches per row, in ascending patch order."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be (batch, patches), got {tuple(scores.shape)}")
    return scores.topk(k, dim=1, sorted=False).indices.sort(dim=1).values


def random_patches(batch: int, num_patches: int, k: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(B, k)`` patch indices drawn uniformly without replacement (the ``random`` ablation)."""
    noise = torch.rand(batch, num_patches, generator=generator)
    return top_patches(noise, k).to(device)


def ema_image_size(image_size: int, patch_size: int, scale: float) -> int:
    """Side of the EMA tower's view: ``scale × image_size`` rounded to whole patches, at least one patch."""
    return max(1, int(math.floor(image_size * scale / patch_size + 0.5))) * patch_size


def upsample_scores(scores: torch.Tensor, grid: int) -> torch.Tensor:
    """``(B, g²)`` patch scores on a coarse square grid -> ``(B, grid²)`` by bilinear interpolation."""
    coarse = int(round(scores.shape[1] ** 0.5))
    if coarse == grid:
        return scores
    maps = scores.float().view(len(scores), 1, coarse, coarse)
    return F.interpolate(maps, size=(grid, grid), mode="bilinear", align_corners=False).flatten(1)


def gather_tokens(tokens: torch.Tensor, patch_index: torch.Tensor) -> torch.Tensor:
    """``(B, 1 + k, D)``: [CLS] followed by the patch tokens at ``patch_index`` (position embeddings included)."""
    cls, patches = tokens[:, :1], tokens[:, 1:]
    picked = torch.gather(patches, 1, patch_index.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
    return torch.cat([cls, picked], dim=1)


def ema_momentum(step: int, total_steps: int, start: float, end: float) -> float:
    """BYOL's cosine schedule: ``start`` at step 0, rising to ``end`` at ``total_steps``."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def ema_update(ema: Sequence[torch.Tensor], online: Sequence[torch.Tensor], momentum: float) -> None:
    """``ema ← momentum · ema + (1 − momentum) · online``, in place, for each pair."""
    if not ema:
        return
    ema, online = list(ema), [o.detach().to(e.dtype) for e, o in zip(ema, online, strict=True)]
    torch._foreach_mul_(ema, momentum)
    torch._foreach_add_(ema, online, alpha=1.0 - momentum)


# --------------------------------------------------------------------------- the vision tower, piece by piece


class VisionTower(nn.Module):
    """CLIP's vision transformer + projection, run from pixels or from a chosen set of tokens."""

    def __init__(self, vision_model: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        self.vision_model = vision_model
        self.projection = projection

    @property
    def layers(self) -> nn.ModuleList:
        return self.vision_model.encoder.layers

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + N, D)`` patch embeddings with [CLS] in front and the position embeddings added."""
        embeddings = self.vision_model.embeddings
        parameter = embeddings.patch_embedding.weight
        other_grid = pixels.shape[-2] * pixels.shape[-1] != embeddings.num_patches * embeddings.patch_size**2
        return embeddings(pixels.to(parameter.dtype), interpolate_pos_encoding=other_grid)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Projected (un-normalised) image embedding from any subset of tokens with [CLS] first."""
        hidden = self.vision_model.pre_layrnorm(tokens)
        hidden = self.vision_model.encoder(inputs_embeds=hidden).last_hidden_state
        return self.projection(self.vision_model.post_layernorm(hidden[:, 0]))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encode_tokens(self.tokens(pixels))

    def encode_with_cls_attention(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding of the whole image and ``(B, N)`` [CLS]→patch attention averaged over layers and heads.

        The query of [CLS] and the keys are caught from each layer's own ``q_proj``/``k_proj``
        outputs, so only one attention row per head is recomputed here and the layers run as usual.
        """
        caught: dict[tuple[int, str], torch.Tensor] = {}

        def catch(index: int, kind: str) -> Callable[..., None]:
            def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
                caught[(index, kind)] = output[:, :1] if kind == "q" else output

            return hook

        handles = []
        for i, layer in enumerate(self.layers):
            handles.append(layer.self_attn.q_proj.register_forward_hook(catch(i, "q")))
            handles.append(layer.self_attn.k_proj.register_forward_hook(catch(i, "k")))
        try:
            embedding = self.forward(pixels)
        finally:
            for handle in handles:
                handle.remove()
        scores = None
        for i, layer in enumerate(self.layers):
            attention = layer.self_attn
            row = cls_attention(caught[(i, "q")], caught[(i, "k")], attention.num_heads, attention.scale)
            scores = row if scores is None else scores + row
        assert scores is not None
        return embedding, scores / len(self.layers)


def cls_attention(query_cls: torch.Tensor, keys: torch.Tensor, num_heads: int, scale: float) -> torch.Tensor:
    """``(B, N)``: softmax attention of the [CLS] query over all tokens, patch part, mean over heads."""
    batch, tokens, width = keys.shape
    head_dim = width // num_heads
    q = query_cls.float().view(batch, 1, num_heads, head_dim).transpose(1, 2)  # (B, H, 1, d)
    k = keys.float().view(batch, tokens, num_heads, head_dim).transpose(1, 2)  # (B, H, T, d)
    weights = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)  # (B, H, 1, T)
    return weights[:, :, 0, 1:].mean(dim=1)


class Predictor(nn.Module):
    """BYOL-style MLP from the online embedding of a masked view to the EMA embedding of the full one."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def distill_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's ``2 − 2 cos(prediction, target)``, averaged; the target carries no gradient."""
    return (2 - 2 * F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1)).mean()


def simclr_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views of the same images (row ``i`` of each is the positive pair)."""
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


# --------------------------------------------------------------------------- the classifier


class AclipClassifier(ImageClassifier):
    """An :class:`ImageClassifier` whose training step is A-CLIP's; evaluation is the plain full-token one.

    The training loop calls :meth:`training_loss` instead of its own loss, :meth:`after_optimizer_step`
    after each optimizer step (the EMA update), and saves :meth:`extra_state` in its checkpoints.
    The EMA tower lives under ``ema.`` and is never trained, counted or saved with the weights.
    """

    def __init__(
        self,
        backbone: Backbone,
        head: ClassHead,
        augment: AugmentConfig,
        settings: AclipSettings,
        image_size: int | None = None,
        class_prompts: Mapping[str, Sequence[str]] | None = None,
        class_names: Sequence[str] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        if backbone.family != "clip":
            raise AclipConfigError(
                f"A-CLIP needs a CLIP backbone (its token selection scores patches by [CLS] attention); "
                f"'{backbone.source}' is {backbone.family}. Set aclip.model.backbone to a CLIP model."
            )
        super().__init__(backbone, head, augment, image_size, class_prompts, class_names)
        self.settings = settings
        self.label_smoothing = label_smoothing
        # Not registered as a child: its modules are the backbone's own, already under ``model.``.
        object.__setattr__(self, "online", VisionTower(self.model.vision_model, self.model.visual_projection))
        self.ema = copy.deepcopy(self.online).requires_grad_(False)
        dim = head.weight.shape[1]
        self.predictor = Predictor(dim, settings.predictor_hidden or 2 * dim)
        self.grid = self.image_size // backbone.patch_size
        self.num_patches = self.grid * self.grid
        self.ema_image_size = ema_image_size(self.image_size, backbone.patch_size, settings.ema_image_scale)
        self.keep = self.num_patches if settings.selection == "none" else num_kept(self.num_patches, settings.keep_ratio)
        self.tokens_kept = 0  # patch tokens the online tower actually saw, summed over views
        self.views_seen = 0
        self._ema_pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    # -- training ---------------------------------------------------------------------------

    def _online_views(self, images: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
        device = self.head.weight.device
        mean, std = self.backbone.image_mean, self.backbone.image_std
        return [prepare_train_batch(images, mean, std, self.image_size, self.augment, device, generator) for _ in range(self.settings.num_views)]

    def select(self, pixels: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Kept patch indices ``(B, k)`` for one view and the EMA embedding of the full view (or None)."""
        s = self.settings
        target = None
        scores = None
        if s.selection == "attentive":
            with torch.no_grad():
                target, scores = self.ema.encode_with_cls_attention(self._ema_view(pixels))
        elif s.weights["distill"] > 0:
            with torch.no_grad():
                target = self.ema(self._ema_view(pixels))
        if scores is not None:
            index = top_patches(upsample_scores(scores, self.grid), self.keep)
        elif s.selection == "random":
            index = random_patches(len(pixels), self.num_patches, self.keep, generator, pixels.device)
        else:
            index = torch.arange(self.num_patches, device=pixels.device).expand(len(pixels), -1)
        return index, target

    def _ema_view(self, pixels: torch.Tensor) -> torch.Tensor:
        """The view the EMA tower scores: ``pixels`` itself, or downscaled (antialiased) by ``ema_image_scale``."""
        size = self.ema_image_size
        if pixels.shape[-1] == size:
            return pixels
        return F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def training_loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """A-CLIP's loss for one batch, the normalised embeddings of the first view, and the class side.

        With several processes ``gather`` (training/distributed.py) joins every process's embeddings,
        EMA targets and labels before the loss terms, so the loss and the returned embeddings are
        those of the whole batch, as with one process.
        """
        s, w = self.settings, self.settings.weights
        classes, scale, bias = self.class_side()
        embeddings, targets, kept = [], [], []
        for pixels in self._online_views(images, generator):
            index, target = self.select(pixels, generator)
            tokens = gather_tokens(self.online.tokens(pixels), index)
            embeddings.append(self.online.encode_tokens(tokens).float())
            targets.append(target)
            kept.append(index.shape[1])
        if gather is not None:
            embeddings = [gather(e) for e in embeddings]
            targets = [None if t is None else gather(t) for t in targets]
            labels = gather(labels)
        for per_image, e in zip(kept, embeddings, strict=True):  # counted over the whole batch
            self.tokens_kept += per_image * len(e)
            self.views_seen += len(e)
        normalised = [F.normalize(e, dim=-1) for e in embeddings]
        loss = sum(self._class_terms(z, labels, classes, scale, bias) for z in normalised) / len(normalised)
        if w["distill"]:
            for i, e in enumerate(embeddings):
                target = targets[(i + 1) % len(targets)]  # the other view's EMA embedding when there are two
                assert target is not None
                loss = loss + w["distill"] * distill_loss(self.predictor(e), target) / len(embeddings)
        if w["simclr"] and len(embeddings) == 2:
            loss = loss + w["simclr"] * simclr_loss(embeddings[0], embeddings[1], s.simclr_temperature)
        return loss, normalised[0], (classes, scale, bias)

    def full_token_loss(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """What the same step costs without A-CLIP: one view, every token, no EMA, same class losses."""
        classes, scale, bias = self.class_side()
        return self._class_terms(self.embed(images, generator), labels, classes, scale, bias)

    def _class_terms(self, z: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The weighted image-class terms (contrastive + cross-entropy) for normalised embeddings ``z``."""
        w = self.settings.weights
        loss = torch.zeros((), device=labels.device)
        if w["contrastive"]:
            loss = loss + w["contrastive"] * contrastive_loss(z, classes.float(), labels, scale)
        if w["cross_entropy"]:
            loss = loss + w["cross_entropy"] * cross_entropy_loss(z, classes.float(), labels, scale, bias, self.label_smoothing)
        return loss

    def _pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(EMA, online) tensors worth updating: those the optimizer changes (the rest stay equal)."""
        if self._ema_pairs is None:
            online = dict(self.online.named_parameters())
            self._ema_pairs = [(e, online[name]) for name, e in self.ema.named_parameters() if online[name].requires_grad]
        return self._ema_pairs

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        start, end = self.settings.ema_momentum
        pairs = self._pairs()
        ema_update([e for e, _ in pairs], [o for _, o in pairs], ema_momentum(step, total_steps, start, end))

    def extra_state(self) -> dict[str, Any]:
        """What a checkpoint needs beyond the trainable weights: the EMA tower and the token counters."""
        return {
            "ema": {name: p.detach() for name, p in self.ema.named_parameters()},
            "tokens_kept": self.tokens_kept,
            "views_seen": self.views_seen,
        }

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        ema = dict(self.ema.named_parameters())
        with torch.no_grad():
            for name, value in state["ema"].items():
                ema[name].copy_(value.to(ema[name].device, ema[name].dtype))
        self.tokens_kept, self.views_seen = int(state["tokens_kept"]), int(state["views_seen"])

    def train(self, mode: bool = True) -> AclipClassifier:
        super().train(mode)
        self.ema.eval()  # the teacher never uses dropout
        return self

    # -- evaluation and reporting ---------------------------------------------------------------

    def ema_classifier(self) -> EmaClassifier:
        return EmaClassifier(self)

    def token_report(self) -> dict[str, Any]:
        measured = self.tokens_kept / self.views_seen if self.views_seen else float("nan")
        return {
            "selection": self.settings.selection,
            "keep_ratio": self.settings.keep_ratio,
            "num_views": self.settings.num_views,
            "patch_grid": self.grid,
            "patch_tokens_per_image": self.num_patches,
            "ema_image_size": self.ema_image_size,
            "ema_patch_tokens": (self.ema_image_size // self.backbone.patch_size) ** 2,
            "patch_tokens_kept_per_view": measured,
            "tokens_kept_fraction": measured / self.num_patches if self.views_seen else float("nan"),
            "views_trained": self.views_seen,
        }


class EmaClassifier(nn.Module):
    """The EMA tower with the online head, in the interface ``evaluate()`` expects (full tokens)."""

    def __init__(self, model: AclipClassifier) -> None:
        super().__init__()
        self.source = [model]  # a list keeps the parent out of this module's parameters

    def embed(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        model = self.source[0]
        pixels = prepare_eval_batch(images, model.backbone.image_mean, model.backbone.image_std, model.image_size, model.head.weight.device)
        return F.normalize(model.ema(pixels).float(), dim=-1)

    def class_side(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return self.source[0].class_side()


@contextmanager
def _preserved_rng(device: torch.device) -> Iterator[None]:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def measure_step_speedup(model: AclipClassifier, images: torch.Tensor, labels: torch.Tensor, repeats: int = 5) -> dict[str, float]:
    """Median seconds of an A-CLIP step (EMA scoring + masked forward/backward) and a full-token one.

    Both run forward and backward on the same batch in training mode; no optimizer step, gradients
    are cleared afterwards and the RNG state is restored, so training results are untouched.
    """
    device = model.head.weight.device
    images, labels = images.to(device), labels.to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(step: Callable[[], torch.Tensor]) -> float:
        sync()
        start = time.perf_counter()
        step().backward()
        sync()
        return time.perf_counter() - start

    was_training = model.training
    counters = (model.tokens_kept, model.views_seen)
    masked, full = [], []
    with _preserved_rng(device):
        generator = torch.Generator().manual_seed(0)
        model.train()
        for i in range(repeats + 1):  # the first pair is warm-up
            m = timed(lambda: model.training_loss(images, labels, generator)[0])
            f = timed(lambda: model.full_token_loss(images, labels, generator))
            if i:
                masked.append(m)
                full.append(f)
    model.zero_grad(set_to_none=True)
    model.tokens_kept, model.views_seen = counters
    model.train(was_training)
    m, f = statistics.median(masked), statistics.median(full)
    return {"masked_step_seconds": m, "full_step_seconds": f, "masked_step_speedup": f / m, "speedup_batch_size": len(labels)}
