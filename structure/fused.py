"""Faster drop-in versions of ESMFold's trunk block and its modules (same parameters, names and initialisation).

Triangle attention (AF2 suppl. Alg. 13/14): transformers' ``EsmFoldTriangleAttention`` (OpenFold's code)
materialises the scores ``[*, I, H, J, J]``, adds the mask and triangle biases to them and runs a separate softmax:
memory-bound work that took half of a trunk block here. The attention of every row ``i`` shares one bias
``[H, J, J]`` (the triangle bias, plus the key mask: a key ``k`` is visible when residue ``k`` is real), so one
fused ``scaled_dot_product_attention`` call per batch element with that bias broadcast over the rows gives the same
result without the ``L^3`` intermediates (timings: docs/structure.md). At inference in float32 on the CPU the
attention and its gate run in one kernel (``triangle_attention.cpp``: 1.6-2.3x the flash kernel's rate at
ESMFold's 32-wide heads), elsewhere through ``scaled_dot_product_attention``. Rows are still chunked to bound the
q / k / v memory. Rows of padding residues attend over the real keys instead of the reference's all-masked row;
those rows are padding and never reach real residues (tested against the reference on a padded batch).

Triangle multiplication (Alg. 11/12): a, b and their gates are projected channel-first (``[*, C_z, L, L]``,
contiguous), so the triangle product is a batched matmul over channels with no permuted copies of its operands
(in the original, those copies took much of the module's time). Without gradients
(inference, recycling passes), everything around the product runs over blocks of ``POSITIONS`` pair positions
that stay in cache: layer norms, the four projections in one matmul, the gates in place (timings:
benchmarks/speed/fold_speed.py, docs/structure.md).

Pair transition (``EsmFoldResidueMLP`` on the pair state): without gradients, blocks of rows with the ReLU and
the residual in place, so the ``[N^2, 4 C_z]`` hidden layer never goes through memory.

The block (``EsmFoldTriangularSelfAttentionBlock``): without gradients, each pair update (sequence-to-pair, both
triangle multiplications, both triangle attentions) adds the residual itself as it writes its result
(``add_to``), so no update is written out whole and read back by a separate addition (docs/structure.md).

All are tested against the originals, outputs and gradients (tests/structure/test_fused.py). Checkpoints do not
change.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.esm.modeling_esmfold import (
    EsmFoldResidueMLP,
    EsmFoldSequenceToPair,
    EsmFoldTriangleAttention,
    EsmFoldTriangleMultiplicativeUpdate,
    EsmFoldTriangularSelfAttentionBlock,
)

from xtrimo.structure import triangle_attention

if TYPE_CHECKING:
    from transformers.models.esm.configuration_esm import TrunkConfig as EsmTrunkConfig

POSITIONS = 1024  # pair positions per block in the inference paths: a [4 C_z, 1024] block (C_z = 64) is 1 MiB


class SdpaTriangleAttention(EsmFoldTriangleAttention):
    """Drop-in replacement for ``EsmFoldTriangleAttention`` (same parameters and call signature)."""

    kernel = True  # inference in float32 on the CPU through triangle_attention.cpp where it builds; False: SDPA

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
        bias = self._bias(x, mask)

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

    def _bias(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The triangle bias plus the key mask, ``[B, H, J(query), J(key)]`` contiguous, from the normalised ``x``."""
        b, rows, cols, c = x.shape
        bias = torch.matmul(self.linear.weight, x.reshape(b, rows * cols, c).transpose(1, 2))  # [B, H, I * J]
        if self.linear.bias is not None:
            bias = bias + self.linear.bias[:, None]
        bias = bias.view(b, -1, rows, cols)
        if mask is not None:
            # key k is real when residue k is: the pair mask's diagonal (row k, column k)
            key_mask = torch.diagonal(mask, dim1=-2, dim2=-1)  # [B, J]
            bias = bias + (self.inf * (key_mask - 1))[:, None, None, :].to(bias.dtype)
        return bias

    def add_to(self, z: torch.Tensor, mask: torch.Tensor | None = None, chunk_size: int | None = None) -> torch.Tensor:
        """``z + self(z, mask, chunk_size)``, a new ``[B, I, J, C]`` tensor; ``z`` is not changed.

        Without autograd, per chunk of rows: one matmul gives the queries, keys, values and gate ``[R * J, 4 H D]``
        (over blocks of ``POSITIONS`` rows); the gated attention output is written over the gate's columns (by
        :func:`triangle_attention.gated_attention_` where it is usable, else SDPA on strided views and the gate in
        place), which then feed the output projection per block of rows, and the residual is added as the block is
        written. The original's gate, reshaped output, gated product, stacked and concatenated results
        and the block's separate residual pass (each ``[N, N, C]``) are gone.
        """
        mha = self.mha
        if not (_inference_mode(z) and mha.gating):
            return z + self(z, mask=mask, chunk_size=chunk_size)
        x = z if self.starting else z.transpose(-2, -3)
        if mask is not None and not self.starting:
            mask = mask.transpose(-1, -2)
        xn = self.layer_norm(x)  # contiguous in the attended order
        bias = self._bias(xn, mask)
        w = torch.cat([mha.linear_q.weight, mha.linear_k.weight, mha.linear_v.weight, mha.linear_g.weight])
        width = mha.linear_q.weight.shape[0]  # H * D
        out = torch.empty_like(z)
        out_x = out if self.starting else out.transpose(-2, -3)
        b, rows, cols, c = xn.shape
        step = max(1, POSITIONS // cols)  # rows per block of about POSITIONS pair positions
        kernel = self.kernel and triangle_attention.usable(xn)
        for i in range(b):
            bias_i = bias[i] if kernel else bias[i : i + 1]  # [H, J, J] / [1, H, J, J]
            for rs in _spans(rows, chunk_size or rows):
                xr = xn[i, rs].reshape(-1, c)  # [R * J, C]
                proj = xr.new_empty(xr.shape[0], 4 * width)  # q, k, v, gate
                for ps in _spans(xr.shape[0], POSITIONS):  # thin matmuls run twice as fast on blocks in cache
                    torch.mm(xr[ps], w.T, out=proj[ps])
                r = xr.shape[0] // cols
                if kernel:  # the gated output written over the gate's columns
                    triangle_attention.gated_attention_(proj, r, self.no_heads, bias_i, mha.linear_g.bias)
                else:
                    self._sdpa_gated(proj, r, cols, bias_i)
                x_rows, out_rows = x[i, rs], out_x[i, rs]
                for rr in _spans(r, step):
                    y = torch.addmm(mha.linear_o.bias, proj[rr.start * cols : rr.stop * cols, 3 * width :],
                                    mha.linear_o.weight.T)  # [R' * J, C]
                    torch.add(x_rows[rr], y.view(-1, cols, c), out=out_rows[rr])
        return out

    def _sdpa_gated(self, proj: torch.Tensor, rows: int, cols: int, bias: torch.Tensor) -> None:
        """:func:`triangle_attention.gated_attention_` through ``scaled_dot_product_attention`` (any dtype or
        device): the gate columns of ``proj`` ``[R * J, 4 H D]`` become the gated output; ``bias`` ``[1, H, J, J]``."""
        width = proj.shape[1] // 4
        q, k, v, g = (proj[:, j * width : (j + 1) * width].view(rows, cols, self.no_heads, -1) for j in range(4))
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=bias).transpose(1, 2)  # [R, J, H, D]
        g.add_(self.mha.linear_g.bias.view(self.no_heads, -1)).sigmoid_().mul_(o)

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

    def add_to(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``z + self(z, mask)``, a new tensor; without autograd the residual is added block by block."""
        return self._inference(z, mask, residual=True) if _inference_mode(z) else z + self(z, mask=mask)

    def _product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """outgoing: p[i, j] = sum_k a[i, k] b[j, k]; incoming: p[i, j] = sum_k a[k, i] b[k, j] (per channel)."""
        return a @ b.transpose(-1, -2) if self._outgoing else a.transpose(-1, -2) @ b

    def _inference(self, z: torch.Tensor, mask: torch.Tensor | None, residual: bool = False) -> torch.Tensor:
        """The same update (plus ``z`` if ``residual``) without autograd, in blocks of ``POSITIONS`` pair positions.

        Per block: layer norm, one matmul for the four a / b projections (channel-first) and one for the output
        gate, gating in place, written into a, b and the gate; after the triangle product, per block again: the
        output layer norm (over the channels of the channel-first product, its scale folded into ``linear_z``), the
        projection and the gate, written into the gate's storage. Every full-size ``[N, N, C]`` pass of the original
        (layer norms, bias copies, sigmoids, products, permuted copies) becomes a pass over a block that stays in
        cache.
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
        norm, lin = self.layer_norm_out, self.linear_z
        w_z = lin.weight * norm.weight  # linear_z(gamma * x_hat + beta) = (W gamma) x_hat + (W beta + b)
        b_z = torch.addmv(lin.bias, lin.weight, norm.bias)
        for i in range(zf.shape[0]):
            for ps in _spans(n * n, POSITIONS):
                block = p[i, :, ps]  # [C, P]: normalised over the channels in place, no transposed copy
                x = block - block.mean(0)
                x.mul_(x.square().mean(0).add_(norm.eps).rsqrt_())
                update = out[i, ps].mul_(torch.addmm(b_z, x.T, w_z.T))
                if residual:
                    update.add_(zf[i, ps])
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


class FusedSequenceToPair(EsmFoldSequenceToPair):
    """Drop-in replacement for ``EsmFoldSequenceToPair`` with :meth:`add_to` for the block's residual."""

    @classmethod
    def from_module(cls, module: EsmFoldSequenceToPair) -> FusedSequenceToPair:
        new = cls(module.layernorm.normalized_shape[0], module.proj.out_features // 2, module.o_proj.out_features)
        new.load_state_dict(module.state_dict())
        return new.to(module.o_proj.weight.device)

    def add_to(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``z + self(s)`` for ``s`` ``[B, N, c_s]``, ``z`` ``[B, N, N, C_z]``; a new tensor.

        Without autograd, by linearity: ``o_proj([q_j * k_i, q_j - k_i]) = W_p (q_j * k_i) + (W_d q_j + b) - W_d k_i``
        for pair ``(i, j)``, so only the product half goes through a pair-sized matmul (half the original's FLOPs)
        and the difference half is two ``[N, C_z]`` terms broadcast over rows and columns, added with the residual
        over blocks of rows; the original's ``[N, N, 2 inner]`` product, difference and concatenation are gone.
        """
        if not _inference_mode(z):
            return z + self(s)
        q, k = self.proj(self.layernorm(s)).chunk(2, dim=-1)  # [B, N, inner] each
        inner = q.shape[-1]
        w_prod, w_diff = self.o_proj.weight[:, :inner], self.o_proj.weight[:, inner:]
        by_col = torch.addmm(self.o_proj.bias, q.reshape(-1, inner), w_diff.T).view(*q.shape[:2], -1)  # [B, N, C]
        by_row = (k.reshape(-1, inner) @ w_diff.T).view(*k.shape[:2], -1)
        out = torch.empty_like(z)
        n = z.shape[1]
        for b in range(z.shape[0]):
            for rs in _spans(n, max(1, POSITIONS // n)):
                prod = q[b][None] * k[b, rs][:, None]  # [R, N, inner]: row i, column j
                y = (prod.view(-1, inner) @ w_prod.T).view(prod.shape[0], n, -1)
                torch.add(z[b, rs], y, out=out[b, rs]).add_(by_col[b][None]).sub_(by_row[b, rs][:, None])
        return out


class FusedTriangularBlock(EsmFoldTriangularSelfAttentionBlock):
    """``EsmFoldTriangularSelfAttentionBlock`` with the modules above; without autograd (and without dropout), each
    pair update adds its own residual (``add_to``), so no update is written out and read back as a whole."""

    def __init__(self, config: EsmTrunkConfig) -> None:
        super().__init__(config)
        fuse_trunk_blocks(self)

    @classmethod
    def from_module(cls, module: EsmFoldTriangularSelfAttentionBlock) -> FusedTriangularBlock:
        new = cls(module.config)
        new.load_state_dict(module.state_dict())
        return new.to(module.layernorm_1.weight.device).train(module.training)

    def forward(self, sequence_state: torch.Tensor, pairwise_state: torch.Tensor, mask: torch.Tensor | None = None,
                chunk_size: int | None = None, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        """As the original: ``s`` ``[B, N, c_s]``, ``z`` ``[B, N, N, c_z]``, ``mask`` ``[B, N]`` -> new ``(s, z)``."""
        if not _inference_mode(pairwise_state) or (self.training and self.config.dropout > 0):
            return super().forward(sequence_state, pairwise_state, mask=mask, chunk_size=chunk_size, **kwargs)
        bias = self.pair_to_sequence(pairwise_state)
        y, _ = self.seq_attention(self.layernorm_1(sequence_state), mask=mask, bias=bias)
        s = self.mlp_seq(sequence_state + y)
        tri_mask = mask.unsqueeze(2) * mask.unsqueeze(1) if mask is not None else None
        z = self.sequence_to_pair.add_to(s, pairwise_state)
        z = self.tri_mul_out.add_to(z, tri_mask)
        z = self.tri_mul_in.add_to(z, tri_mask)
        z = self.tri_att_start.add_to(z, tri_mask, chunk_size)
        z = self.tri_att_end.add_to(z, tri_mask, chunk_size)
        return s, self.mlp_pair(z)


def _spans(total: int, step: int) -> list[slice]:
    """``slice``s covering ``range(total)`` in steps of ``step`` (the last one shorter)."""
    return [slice(start, min(start + step, total)) for start in range(0, total, step)]


def _inference_mode(x: torch.Tensor) -> bool:
    """The blocked in-place paths run without autograd and outside autocast (their ``out=`` writes keep one dtype);
    otherwise the module computes out of place, as the original."""
    return not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)


def fuse_trunk_blocks(module: nn.Module) -> None:
    """Replace ESMFold's trunk blocks and their triangle attention, multiplication, MLP and sequence-to-pair modules
    inside ``module`` by the versions above, in place (same parameters and names)."""
    swaps = ((EsmFoldTriangularSelfAttentionBlock, FusedTriangularBlock),
             (EsmFoldTriangleAttention, SdpaTriangleAttention),
             (EsmFoldTriangleMultiplicativeUpdate, FusedTriangleMultiplication), (EsmFoldResidueMLP, FusedResidueMLP),
             (EsmFoldSequenceToPair, FusedSequenceToPair))
    for name, child in list(module.named_children()):
        swap = next((fused for original, fused in swaps if isinstance(child, original)), None)
        if swap is not None and not isinstance(child, swap):
            setattr(module, name, swap.from_module(child))
        elif swap is None:
            fuse_trunk_blocks(child)
