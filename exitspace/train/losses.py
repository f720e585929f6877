"""Joint loss of all exit heads: weighted cross-entropy plus optional distillation from the final exit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from exitspace.errors import ConfigError


def head_loss_weights(head_blocks: Sequence[int], mode: str | Sequence[float]) -> torch.Tensor:
    """One weight per head.

    ``"increasing"``: proportional to (block + 1), split evenly among the head types at a block, scaled
    so the final exit's heads weigh 1 in total (the final exit trains as in plain training).
    ``"uniform"``: every mounting point weighs 1 in total. A list gives the weights directly.
    """
    blocks = list(head_blocks)
    if not isinstance(mode, str):
        if len(mode) != len(blocks):
            raise ConfigError(f"loss.weights: {len(mode)} weights for {len(blocks)} heads; give one per head or 'increasing'")
        return torch.tensor(list(mode), dtype=torch.float32)
    last = max(blocks)
    per_block = {b: blocks.count(b) for b in set(blocks)}
    if mode == "increasing":
        raw = [(b + 1) / (last + 1) / per_block[b] for b in blocks]
    elif mode == "uniform":
        raw = [1.0 / per_block[b] for b in blocks]
    else:
        raise ConfigError(f"loss.weights: {mode!r} unknown; use 'increasing', 'uniform' or a list of numbers")
    return torch.tensor(raw, dtype=torch.float32)


def eenn_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    final_mask: torch.Tensor,
    label_smoothing: float = 0.0,
    distill_weight: float = 0.0,
    temperature: float = 3.0,
    teacher_probs: torch.Tensor | None = None,
    teacher_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, per-head loss [H]) for logits ``[B, H, C]``.

    Early heads (``final_mask`` False) mix in ``distill_weight`` of a KL loss towards the softened
    prediction of the last final-exit head (detached). Final-exit heads mix in ``teacher_weight`` of a
    KL loss towards ``teacher_probs`` ``[B, C]`` (other networks' prediction softened at ``temperature``).
    """
    logits = logits.float()
    batch, heads, _ = logits.shape
    per_sample = F.cross_entropy(
        logits.transpose(1, 2), labels[:, None].expand(batch, heads), reduction="none", label_smoothing=label_smoothing
    )  # [B, H]
    per_head = per_sample.mean(0)
    if teacher_probs is not None and teacher_weight > 0:
        kd = _soft_cross_entropy(logits, teacher_probs, temperature)
        mix = torch.where(final_mask, torch.full_like(per_head, teacher_weight), torch.zeros_like(per_head))
        per_head = (1 - mix) * per_head + mix * kd
    if distill_weight > 0:
        teacher_index = int(torch.nonzero(final_mask)[-1])
        teacher = F.softmax(logits[:, teacher_index].detach() / temperature, dim=-1)  # [B, C]
        kd = _soft_cross_entropy(logits, teacher, temperature)
        mix = torch.where(final_mask, torch.zeros_like(per_head), torch.full_like(per_head, distill_weight))
        per_head = (1 - mix) * per_head + mix * kd
    return (weights * per_head).sum(), per_head.detach()


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-head KL(target || softmax(logits / T)) * T^2, averaged over the batch: ``[H]`` for logits ``[B, H, C]``."""
    student = F.log_softmax(logits / temperature, dim=-1)
    return F.kl_div(student, target[:, None].expand_as(student), reduction="none").sum(-1).mean(0) * temperature**2


def scale_early_head_gradients(model: torch.nn.Module, scale: float) -> None:
    """Multiply the gradient that each early (non-final) exit head sends into the backbone by ``scale``.

    The heads themselves train at full strength; only their pull on the shared features is damped,
    which limits how much early exits cost the final exit. Needs an EENN (``head_grad_scale``); a
    scale of 1 changes nothing.
    """
    if not hasattr(model, "head_grad_scale"):
        raise ConfigError(f"loss.head_grad_scale: {type(model).__name__} has no early heads to scale; use an EENN")
    setattr(model, "head_grad_scale", float(scale))  # setattr: nn.Module types attribute assignment as Tensor/Module only
