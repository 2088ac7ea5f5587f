"""Faster drop-in versions of three ESMFold trunk modules (same parameters, names and initialisation).

Triangle attention (AF2 suppl. Alg. 13/14): transformers' ``EsmFoldTriangleAttention`` (OpenFold's code)
materialises the scores ``[*, I, H, J, J]``, adds the mask and triangle biases to them and runs a separate softmax:
memory-bound work that took half of a trunk block here. The attention of every row ``i`` shares one bias
``[H, J, J]`` (the triangle bias, plus the key mask: a key ``k`` is visible when residue ``k`` is real), so one
fused ``scaled_dot_product_attention`` call per batch element with that bias broadcast over the rows gives the same
result without the ``L^3`` intermediates (the attention itself 4.8x faster, the module 2.6x, at L = 256 on this
CPU). Rows are still chunked to bound the q / k / v memory. Rows of padding residues attend over the real keys
instead of the reference's all-masked row; those rows are padding and never reach real residues (tested against the
reference on a padded batch).

Triangle multiplication (Alg. 11/12): a, b and their gates are projected channel-first (``[*, C_z, L, L]``,
contiguous), so the triangle product is a batched matmul over channels with no permuted copies of its operands
(in the original, those copies took much of the module's time). Without gradients
(inference, recycling passes), everything around the product runs over blocks of ``POSITIONS`` pair positions
that stay in cache: layer norms, the four projections in one matmul, the gates in place (timings:
benchmarks/speed/fold_speed.py, docs/structure.md).

Pair transition (``EsmFoldResidueMLP`` on the pair state): without gradients, blocks of rows with the ReLU and
the residual in place, so the ``[N^2, 4 C_z]`` hidden layer never goes through memory.

All are tested against the originals, outputs and gradients (tests/structure/test_fused.py). Checkpoints do not
change.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.esm.modeling_esmfold import (
    EsmFoldResidueMLP,
    EsmFoldTriangleAttention,
    EsmFoldTriangleMultiplicativeUpdate,
)

POSITIONS = 1024  # pair positions per block in the inference paths: a [4 C_z, 1024] block (C_z = 64) is 1 MiB


class SdpaTriangleAttention(EsmFoldTriangleAttention):
    """Drop-in replacement for ``EsmFoldTriangleAttention`` (same parameters and call signature)."""

    @classmethod
    def from_module(cls, module: EsmFoldTriangleAttention) -> SdpaTriangleAttention:
        new = cls(module.c_in, module.c_hidden, module.no_heads, starting=module.starting, inf=module.inf)
        new.load_state_dict(module.state_dict())
        return new.to(next(module.parameters()).device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, chunk_size: int | None = None,
                **_: object) -> torch.Tensor:
        """Args: x ``[B, I, J, C_in]`` pair state; mask ``[B, I, J]`` pair mask (1 = real); ``chunk_size`` rows
        at a time (None: all). Returns ``[B, I, J, C_in]``."""
        if not self.starting:
            x = x.transpose(-2, -3)
            mask = mask.transpose(-1, -2) if mask is not None else None
        x = self.layer_norm(x)
        rows = x.shape[1]
        bias = self.linear(x).permute(0, 3, 1, 2)  # [B, H, J(query), J(key)]
        if mask is not None:
            # key k is real when residue k is: the pair mask's diagonal (row k, column k)
            key_mask = torch.diagonal(mask, dim1=-2, dim2=-1)  # [B, J]
            bias = bias + (self.inf * (key_mask - 1))[:, None, None, :].to(bias.dtype)

        step = chunk_size if chunk_size else rows
        out = torch.empty_like(x) if not torch.is_grad_enabled() else None
        chunks = []
        for rs in _spans(rows, step):
            y = self._rows(x[:, rs], bias)
            if out is None:
                chunks.append(y)
            else:
                out[:, rs] = y  # no second full-size copy when no gradient is recorded
        out = torch.cat(chunks, dim=1) if out is None else out
        return out.transpose(-2, -3) if not self.starting else out

    def _rows(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Attention of the rows in ``x`` ``[B, I', J, C]`` (a chunk of rows bounds the q / k / v memory)."""
        b, rows, cols, _ = x.shape
        mha = self.mha

        def heads_first(t: torch.Tensor) -> torch.Tensor:  # [B, I', J, H*D] -> [B, I', H, J, D]
            return t.view(b, rows, cols, self.no_heads, -1).transpose(-2, -3)

        q, k, v = heads_first(mha.linear_q(x)), heads_first(mha.linear_k(x)), heads_first(mha.linear_v(x))
        out = torch.stack([
            F.scaled_dot_product_attention(q[i], k[i], v[i], attn_mask=bias[i : i + 1].to(q.dtype))
            for i in range(b)
        ])  # [B, I', H, J, D]; SDPA's default scale is the reference's 1 / sqrt(D)
        return mha._wrap_up(out.transpose(-2, -3), x)  # gating and output projection, as the parent


class FusedTriangleMultiplication(EsmFoldTriangleMultiplicativeUpdate):
    """Drop-in replacement for ``EsmFoldTriangleMultiplicativeUpdate`` (same parameters and call signature)."""

    @classmethod
    def from_module(cls, module: EsmFoldTriangleMultiplicativeUpdate) -> FusedTriangleMultiplication:
        width = module.linear_z.weight.shape[0]
        new = cls(SimpleNamespace(pairwise_state_dim=width), _outgoing=module._outgoing)
        new.load_state_dict(module.state_dict())
        return new.to(module.linear_z.weight.device)

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        """Args: z ``[*, N_res, N_res, C_z]``; mask ``[*, N_res, N_res]``. Returns the update ``[*, N, N, C_z]``.

        a and b are produced channel-first (``[*, C, N, N]``, contiguous) by matmuls against the transposed
        state, so the gates run on contiguous memory and the triangle product is a batched matmul over channels
        with no permuted copies of its operands. Without gradients, the work before and after the product runs
        over blocks of pair positions small enough to stay in cache (:meth:`_inference`).
        """
        if _inference_mode(z):
            return self._inference(z, mask)
        *batch, n, _, c = z.shape
        z = self.layer_norm_in(z)
        zt = z.reshape(-1, n * n, c).transpose(-1, -2).contiguous()  # [B, C, N*N]
        m = mask.reshape(-1, 1, n, n) if mask is not None else None

        def project(linear: nn.Linear) -> torch.Tensor:  # [B, C, N, N], channel-first and contiguous
            out = torch.baddbmm(linear.bias[:, None], linear.weight.expand(zt.shape[0], -1, -1), zt)
            return out.view(-1, c, n, n)

        def gated(proj: nn.Linear, gate: nn.Linear) -> torch.Tensor:  # mask * sigmoid(gate(z)) * proj(z)
            out = torch.sigmoid(project(gate)) * project(proj)
            return out * m if m is not None else out

        a, b = gated(self.linear_a_p, self.linear_a_g), gated(self.linear_b_p, self.linear_b_g)
        p = self._product(a, b)
        x = self.layer_norm_out(p.permute(0, 2, 3, 1)).reshape(*batch, n, n, c)
        return self.linear_z(x) * torch.sigmoid(self.linear_g(z))

    def _product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """outgoing: p[i, j] = sum_k a[i, k] b[j, k]; incoming: p[i, j] = sum_k a[k, i] b[k, j] (per channel)."""
        return a @ b.transpose(-1, -2) if self._outgoing else a.transpose(-1, -2) @ b

    def _inference(self, z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The same update without autograd, in blocks of ``POSITIONS`` pair positions.

        Per block: layer norm, one matmul for the four a / b projections (channel-first) and one for the output
        gate, gating in place, written into a, b and the gate; after the triangle product, per block again: the
        output layer norm, ``linear_z`` and the gate, written into the gate's storage. Every full-size ``[N, N, C]``
        pass of the original (layer norms, bias copies, sigmoids, products, permuted copies) becomes a pass over a
        block that stays in cache.
        """
        *batch, n, _, c = z.shape
        zf = z.reshape(-1, n * n, c)
        mf = mask.reshape(-1, n * n).to(z.dtype) if mask is not None else None
        ab = (self.linear_a_p, self.linear_a_g, self.linear_b_p, self.linear_b_g)
        w_ab = torch.cat([lin.weight for lin in ab])  # [4C, C]
        b_ab = torch.cat([lin.bias for lin in ab])[:, None]  # [4C, 1]
        a, b = z.new_empty(zf.shape[0], c, n * n), z.new_empty(zf.shape[0], c, n * n)
        out = z.new_empty(zf.shape)  # first the output gate, then the update itself
        for i in range(zf.shape[0]):
            for ps in _spans(n * n, POSITIONS):
                zc = self.layer_norm_in(zf[i, ps])
                proj = torch.addmm(b_ab, w_ab, zc.T)  # [4C, P]: a_p, a_g, b_p, b_g
                torch.sigmoid(torch.addmm(self.linear_g.bias, zc, self.linear_g.weight.T), out=out[i, ps])
                for k, dest in ((0, a), (2, b)):
                    block = torch.mul(proj[(k + 1) * c : (k + 2) * c].sigmoid_(), proj[k * c : (k + 1) * c],
                                      out=dest[i, :, ps])
                    if mf is not None:
                        block.mul_(mf[i, ps])
        p = self._product(a.view(-1, c, n, n), b.view(-1, c, n, n)).view(-1, c, n * n)
        del a, b
        for i in range(zf.shape[0]):
            for ps in _spans(n * n, POSITIONS):
                x = self.layer_norm_out(p[i, :, ps].T)
                out[i, ps].mul_(torch.addmm(self.linear_z.bias, x, self.linear_z.weight.T))
        return out.view(*batch, n, n, c)


class FusedResidueMLP(EsmFoldResidueMLP):
    """Drop-in replacement for ``EsmFoldResidueMLP`` (``x + Linear(ReLU(Linear(LayerNorm(x))))``).

    Without autograd and dropout, the MLP runs over blocks of rows that stay in cache, with the ReLU in place and
    the residual added into the block: on the pair state (``[N^2, C_z]`` rows, a ``4 C_z`` hidden layer) the
    original's bias copies, ReLU and residual each took a full pass over memory, ``[N^2, 4 C_z]`` for the hidden one.
    """

    @classmethod
    def from_module(cls, module: EsmFoldResidueMLP) -> FusedResidueMLP:
        ln, fc1, _, fc2, drop = module.mlp
        new = cls(fc1.in_features, fc1.out_features, dropout=drop.p)
        new.load_state_dict(module.state_dict())
        return new.to(fc1.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ln, fc1, _, fc2, drop = self.mlp
        if not _inference_mode(x) or (self.training and drop.p > 0):
            return super().forward(x)
        rows = x.reshape(-1, x.shape[-1])
        out = torch.empty_like(rows)
        step = max(1, POSITIONS * 4 * x.shape[-1] // fc1.out_features)  # the hidden block as large as a pair block
        for rs in _spans(rows.shape[0], step):
            h = torch.addmm(fc1.bias, ln(rows[rs]), fc1.weight.T).relu_()
            torch.addmm(rows[rs], h, fc2.weight.T, out=out[rs]).add_(fc2.bias)
        return out.view(x.shape)


def _spans(total: int, step: int) -> list[slice]:
    """``slice``s covering ``range(total)`` in steps of ``step`` (the last one shorter)."""
    return [slice(start, min(start + step, total)) for start in range(0, total, step)]


def _inference_mode(x: torch.Tensor) -> bool:
    """The blocked in-place paths run without autograd and outside autocast (their ``out=`` writes keep one dtype);
    otherwise the module computes out of place, as the original."""
    return not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)


def fuse_trunk_blocks(module: nn.Module) -> None:
    """Replace triangle attention and multiplication inside ``module`` by the versions above, in place."""
    for name, child in list(module.named_children()):
        if isinstance(child, EsmFoldTriangleAttention) and not isinstance(child, SdpaTriangleAttention):
            setattr(module, name, SdpaTriangleAttention.from_module(child))
        elif isinstance(child, EsmFoldTriangleMultiplicativeUpdate) and not isinstance(child, FusedTriangleMultiplication):
            setattr(module, name, FusedTriangleMultiplication.from_module(child))
        elif isinstance(child, EsmFoldResidueMLP) and not isinstance(child, FusedResidueMLP):
            setattr(module, name, FusedResidueMLP.from_module(child))
        else:
            fuse_trunk_blocks(child)
