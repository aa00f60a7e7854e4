"""Losses for fine-tuning CLIP-family models as C-way (15-class) classifiers.

The "text side" is one embedding per class (prompt-ensembled, L2-normalised class text
embeddings, shape ``(C, D)``), so the usual image-text losses are adapted:

* ``cross_entropy``: plain softmax classification over the C class embeddings.
* ``contrastive``: CLIP InfoNCE (Radford et al., 2021) between the B images of a batch and the
  B texts of *their* classes.  With only 15 classes many images in a batch share a class, so the
  "negatives" of image ``i`` would include copies of its own class text; pushing those apart would
  contradict the positive term.  Same-class pairs are therefore treated as positives
  (multi-positive InfoNCE, as in SupCon, Khosla et al., 2020).
* ``sigmoid``: SigLIP (Zhai et al., ICCV 2023) pairwise sigmoid loss, again with every
  same-class image/text pair labelled +1 instead of only the diagonal.

All functions take already L2-normalised ``img`` (B, D) and ``cls`` (C, D), integer ``labels``
(B,), ``scale`` = the logit *multiplier* (``exp(logit_scale)`` already applied) and optional
``bias``, as scalar (or shape ``(1,)``) tensors so that gradients reach them when they are learned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LOSSES",
    "class_logits",
    "compute_loss",
    "contrastive_loss",
    "cross_entropy_loss",
    "get_loss",
    "paired_contrastive_loss",
    "paired_sigmoid_loss",
    "sigmoid_loss",
]


def _check_inputs(img: Tensor, cls: Tensor, labels: Tensor | None = None) -> None:
    if img.ndim != 2 or cls.ndim != 2:
        raise ValueError(f"img and cls must be 2-D, got shapes {tuple(img.shape)} and {tuple(cls.shape)}")
    if img.shape[1] != cls.shape[1]:
        raise ValueError(f"embedding dims differ: img {tuple(img.shape)} vs cls {tuple(cls.shape)}")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != img.shape[0]):
        raise ValueError(f"labels must have shape ({img.shape[0]},), got {tuple(labels.shape)}")


def _same_class_mask(labels: Tensor) -> Tensor:
    """(B, B) bool mask, True where images i and j belong to the same class (diagonal included)."""
    return labels[:, None] == labels[None, :]


def class_logits(img: Tensor, cls: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
    """Per-class logits ``scale * img @ cls.T (+ bias)``, shape (B, C).

    Shared by the cross-entropy loss and evaluation so that training and prediction score
    classes identically (the bias only matters for SigLIP-style calibrated probabilities;
    it does not change the arg-max).
    """
    _check_inputs(img, cls)
    logits = scale * (img @ cls.T)
    if bias is not None:
        logits = logits + bias
    return logits


def cross_entropy_loss(
    img: Tensor,
    cls: Tensor,
    labels: Tensor,
    scale: Tensor,
    bias: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy over the C class embeddings (the text embeddings act as a linear head)."""
    _check_inputs(img, cls, labels)
    return F.cross_entropy(class_logits(img, cls, scale, bias), labels, label_smoothing=label_smoothing)


def contrastive_loss(img: Tensor, cls: Tensor, labels: Tensor, scale: Tensor) -> Tensor:
    """Symmetric multi-positive CLIP InfoNCE between images and the texts of their classes.

    ``logits = scale * img @ cls[labels].T`` is (B, B).  For image ``i`` the positives are all
    ``j`` with ``labels[j] == labels[i]``; their texts are identical, so counting them as
    negatives (standard CLIP) would ask the model to rank a text above an exact copy of itself,
    an impossible and gradient-wasting objective.  Per row:
    ``-log(sum_{j in P(i)} exp(l_ij) / sum_j exp(l_ij))``, computed with ``logsumexp``; the same on
    the transpose (text -> image), and the two directions are averaged.  With all-distinct labels
    this reduces exactly to the standard CLIP loss.  No bias argument: a constant added to every
    logit cancels in the softmax.
    """
    _check_inputs(img, cls, labels)
    return paired_contrastive_loss(img, cls[labels], labels, scale)


def paired_contrastive_loss(img: Tensor, txt: Tensor, labels: Tensor, scale: Tensor) -> Tensor:
    """:func:`contrastive_loss` with one text per image: ``txt`` (B, D) is image ``i``'s own text.

    FLYP (models/flyp.py) pairs each image with one prompt sampled from its class's prompts, so two
    images of a class may carry different prompts.  Their pairs still count as positives, the same
    choice as :func:`contrastive_loss`: both prompts describe both images, and pushing an image away
    from a true description of it would contradict the positive term.
    """
    if txt.shape != img.shape:
        raise ValueError(f"txt must have the shape of img {tuple(img.shape)}, got {tuple(txt.shape)}")
    _check_inputs(img, txt, labels)
    logits = scale * (img @ txt.T)
    pos = _same_class_mask(labels)  # symmetric, so it serves both directions
    neg_inf = torch.finfo(logits.dtype).min
    pos_logits = logits.masked_fill(~pos, neg_inf)

    i2t = torch.logsumexp(logits, dim=1) - torch.logsumexp(pos_logits, dim=1)
    t2i = torch.logsumexp(logits, dim=0) - torch.logsumexp(pos_logits, dim=0)
    return (i2t.mean() + t2i.mean()) / 2


def sigmoid_loss(img: Tensor, cls: Tensor, labels: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    """SigLIP pairwise sigmoid loss with same-class pairs as positives.

    ``logits = scale * img @ cls[labels].T + bias``; ``z_ij = +1`` if ``labels[i] == labels[j]``
    else ``-1``; ``loss = -sum_ij logsigmoid(z_ij * logits_ij) / B``.  Labelling only the diagonal
    +1 (as in image-caption pre-training) would push each image away from the text of its own class
    whenever a class repeats in the batch.  Normalising by B (not B^2) matches the paper and
    ``transformers.SiglipModel`` (sum over one axis, mean over the other).
    """
    _check_inputs(img, cls, labels)
    return paired_sigmoid_loss(img, cls[labels], labels, scale, bias)


def paired_sigmoid_loss(img: Tensor, txt: Tensor, labels: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    """:func:`sigmoid_loss` with one text per image (``txt`` row ``i`` is image ``i``'s own text).

    Image-caption pretraining (models/pretrain.py) pairs each image with one of its captions; ``labels``
    then say which caption it is, so two images with the same caption text are a positive pair both ways.
    """
    if txt.shape != img.shape:
        raise ValueError(f"txt must have the shape of img {tuple(img.shape)}, got {tuple(txt.shape)}")
    _check_inputs(img, txt, labels)
    logits = scale * (img @ txt.T) + bias
    z = _same_class_mask(labels).to(logits.dtype) * 2 - 1
    return -F.logsigmoid(z * logits).sum() / img.shape[0]


LOSSES: dict[str, Callable[..., Tensor]] = {
    "cross_entropy": cross_entropy_loss,
    "contrastive": contrastive_loss,
    "sigmoid": sigmoid_loss,
}


def get_loss(name: str) -> Callable[..., Tensor]:
    """Look up a loss by name; unknown names raise ``ValueError`` listing the valid choices."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; valid choices are: {sorted(LOSSES)}") from None


def compute_loss(
    name: str,
    img: Tensor,
    cls: Tensor,
    labels: Tensor,
    scale: Tensor,
    bias: Tensor | None = None,
    **options: Any,
) -> Tensor:
    """Dispatch to the named loss.

    ``bias`` is required for ``sigmoid`` (SigLIP's learned bias offsets the heavy negative
    imbalance; without it the loss starts far from equilibrium), passed to ``cross_entropy``
    (shifts all class logits equally) and ignored by ``contrastive`` (softmax is shift-invariant).
    Extra ``options`` (e.g. ``label_smoothing``) go to the loss function.
    """
    fn = get_loss(name)
    if name == "sigmoid":
        if bias is None:
            raise ValueError("The 'sigmoid' (SigLIP) loss requires a bias tensor; got bias=None.")
        return fn(img, cls, labels, scale, bias, **options)
    if name == "contrastive":
        return fn(img, cls, labels, scale, **options)
    return fn(img, cls, labels, scale, bias, **options)
