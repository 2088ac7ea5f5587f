"""ESMFold (Lin et al., Science 2023) checkpoints through xtrimo's folding trunk.

    folder = Folder.from_esmfold("esmfold_v1/")        # a downloaded facebook/esmfold_v1 (Hugging Face format)
    result = folder.fold("MKTAYIAKQR...:GSHMLEDP...")  # ':' joins chains as ESMFold does

The checkpoint is read by transformers (``EsmForProteinFolding.from_pretrained``, local files only, safetensors or a
``weights_only`` torch file; every missing, unexpected or mis-shaped key is an error). Its ESM-2 language model, the
single-state MLP, residue embedding and the heads run as transformers runs them; its trunk's weights go into
:class:`~xtrimo.structure.trunk.FoldingTrunk`, whose fused triangle modules compute the same function faster and in
less memory. :meth:`EsmFold.forward` follows ``EsmForProteinFolding.forward`` step by step (same recycling count
rule, pLDDT per atom, pTM over the whole input); two choices differ on purpose:

- the chunk of the axial attentions comes from the length and a memory budget (:func:`chunk_for_memory`), not the
  config's fixed 128, so long chains neither run out of memory nor go unchunked (esm #641, #407);
- pLDDT is on ESMFold's 0-100 scale (``esm.esmfold`` multiplies by 100; transformers' port returns 0-1).

On the CPU the language model runs in float32 even when the config asks for ``fp16_esm`` (half precision is slower
there and not what the trunk was trained behind); on CUDA it runs as configured.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from transformers.models.esm.configuration_esm import EsmFoldConfig
from transformers.models.esm.configuration_esm import TrunkConfig as EsmTrunkConfig
from transformers.models.esm.modeling_esmfold import categorical_lddt
from transformers.models.esm.openfold_utils import (
    atom14_to_atom37,
    compute_predicted_aligned_error,
    compute_tm,
    make_atom14_masks,
)

from xtrimo.checkpoint import CheckpointError
from xtrimo.structure.allocator import MMAP_THRESHOLD
from xtrimo.structure.config import StructureModuleConfig, TrunkConfig
from xtrimo.structure.model import PAE_MAX_BIN
from xtrimo.structure.outputs import FoldOutput, Residues
from xtrimo.structure.trunk import FoldingTrunk, trunk_config

CA = 1  # atom37 index of CA
# structure-module settings of transformers' config that our StructureModuleConfig leaves at their defaults
FIXED_STRUCTURE_MODULE = ("num_transition_layers", "num_resnet_blocks", "num_angles", "trans_scale_factor",
                          "epsilon", "inf")
BYTES = 4  # float32 activations
# what a fold holds beside the pair terms of peak_bytes: 0.26-0.31 GB measured at 256-512 residues, rounded up
FIXED_BYTES = int(0.5 * 2 ** 30)
# pair tensors below the heap threshold that xtrimo-fold sets are reused from the heap, whose holes fragment it:
# the peak at 512 residues grew by about 3 pair tensors over the first folds (then stayed; allocator.py)
HEAP_SLACK_PAIRS = 3


def xtrimo_trunk_config(esm_trunk: EsmTrunkConfig) -> TrunkConfig:
    """Our :class:`TrunkConfig` for transformers' ESMFold ``TrunkConfig``.

    Raises:
        CheckpointError: a trunk or structure-module setting our trunk does not build (one line naming it).
    """
    sm = esm_trunk.structure_module
    ours = TrunkConfig(
        c_s=esm_trunk.sequence_state_dim, c_z=esm_trunk.pairwise_state_dim, num_blocks=esm_trunk.num_blocks,
        sequence_head_width=esm_trunk.sequence_head_width, pairwise_head_width=esm_trunk.pairwise_head_width,
        position_bins=esm_trunk.position_bins, max_recycles=esm_trunk.max_recycles, chunk_size=None, dropout=0.0,
        structure_module=StructureModuleConfig(
            c_s=sm.sequence_dim, c_z=sm.pairwise_dim, c_ipa=sm.ipa_dim, c_resnet=sm.resnet_dim,
            no_heads_ipa=sm.num_heads_ipa, no_qk_points=sm.num_qk_points, no_v_points=sm.num_v_points,
            no_blocks=sm.num_blocks, dropout=sm.dropout_rate,
        ),
    )
    built = trunk_config(ours).structure_module
    for key in FIXED_STRUCTURE_MODULE:  # settings without a field of ours must be the defaults we build
        if getattr(sm, key) != getattr(built, key):
            raise CheckpointError(f"ESMFold structure_module.{key} = {getattr(sm, key)!r} is not supported (xtrimo "
                                  f"builds {getattr(built, key)!r})")
    return ours


def check_esmfold_config(esmfold_config: EsmFoldConfig) -> None:
    """Refuse the ESMFold options no released checkpoint uses and transformers' port does not run the same way.

    Raises:
        CheckpointError: one line naming the option.
    """
    for key in ("use_esm_attn_map", "esm_ablate_sequence", "esm_ablate_pairwise", "bypass_lm"):
        if getattr(esmfold_config, key, False):
            raise CheckpointError(f"ESMFold option {key} = true is not supported")


class EsmFold(nn.Module):
    """``EsmForProteinFolding`` with xtrimo's trunk; attribute names equal transformers' (one state dict)."""

    def __init__(self, hf_model: nn.Module) -> None:
        """Take the language model, embedding and heads of a loaded ``EsmForProteinFolding`` and copy its trunk
        into a :class:`FoldingTrunk` (strictly: every key must match)."""
        super().__init__()
        cfg = hf_model.config
        self.config = cfg
        self.trunk_cfg = xtrimo_trunk_config(cfg.esmfold_config.trunk)
        for name in ("esm", "esm_s_combine", "esm_s_mlp", "distogram_head", "ptm_head", "lm_head", "lddt_head"):
            setattr(self, name, getattr(hf_model, name))
        self.embedding = hf_model.embedding if cfg.esmfold_config.embed_aa else None
        self.register_buffer("af2_to_esm", hf_model.af2_to_esm.clone())
        # built without storage and given the loaded tensors themselves (assign=True): the trunk's weights are
        # never held twice (about 2.7 GB for ESMFold v1)
        with torch.device("meta"):
            self.trunk = FoldingTrunk(self.trunk_cfg)
        result = self.trunk.load_state_dict(hf_model.trunk.state_dict(), strict=False, assign=True)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(f"ESMFold trunk keys differ from xtrimo's FoldingTrunk: missing "
                                  f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
        # (the structure module's atom tables are buffers made on first use, on the input's device)
        empty = [n for n, t in [*self.trunk.named_parameters(), *self.trunk.named_buffers()] if t.is_meta]
        if empty:
            raise CheckpointError(f"ESMFold trunk: no weights for {empty[:5]}")
        vocab = cfg.vocab_list
        self.cls_idx, self.eos_idx, self.pad_idx = (vocab.index(t) for t in ("<cls>", "<eos>", "<pad>"))
        self.lddt_bins, self.distogram_bins = hf_model.lddt_bins, hf_model.distogram_bins
        self.eval()

    @property
    def c_z(self) -> int:
        return self.trunk_cfg.c_z

    def language_model_states(self, aatype: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, N, num_layers + 1, H]`` ESM-2 hidden states of the residues (``<cls>`` and ``<eos>`` around each
        sequence, as ``compute_language_model_representations``)."""
        b = aatype.shape[0]
        esmaa = self.af2_to_esm[(aatype + 1).masked_fill(mask != 1, 0)]
        esmaa = torch.cat([esmaa.new_full((b, 1), self.cls_idx), esmaa, esmaa.new_full((b, 1), self.pad_idx)], 1)
        esmaa[range(b), (esmaa != self.pad_idx).sum(1)] = self.eos_idx
        hidden = self.esm(esmaa, attention_mask=esmaa != self.pad_idx, output_hidden_states=True)["hidden_states"]
        return torch.stack(hidden, dim=2)[:, 1:-1]

    @torch.no_grad()
    def forward(self, residues: Residues, num_recycles: int | None = None,
                chunk_size: int | None = None) -> FoldOutput:
        """Fold a batch.

        Args:
            residues: ``aatype`` ``[B, N]`` (0-19, 20 = X, as ESMFold's ``restype_order_with_x``), residue index
                (with ESMFold's +512 per chain for complexes) and mask.
            num_recycles: as ESMFold: None runs ``max_recycles`` passes in all, n runs n + 1.
            chunk_size: axial-attention chunk (None: :func:`chunk_for_memory` with the default budget).

        Returns:
            :class:`FoldOutput` (``plddt`` of CA, ``atom_plddt`` per atom, both 0-100).
        """
        aa, mask = residues.aatype, residues.mask
        b, n = aa.shape
        esm_s = self.language_model_states(aa, mask).to(self.esm_s_combine.dtype)
        s_s_0 = self.esm_s_mlp((self.esm_s_combine.softmax(0).unsqueeze(0) @ esm_s).squeeze(2))
        if self.embedding is not None:
            s_s_0 = s_s_0 + self.embedding(aa)
        passes = self.trunk_cfg.max_recycles if num_recycles is None else num_recycles + 1
        if passes < 1:
            raise ValueError(f"num_recycles must be >= 0, got {num_recycles}")
        chunk = chunk_size or chunk_for_memory(n, self.trunk_cfg)
        # ESMFold's initial pair state is zeros (s_z_0 = None: the trunk does not hold a zero tensor)
        trunk = self.trunk(s_s_0, None, Residues(aa, residues.residue_index, mask), passes - 1, chunk)
        atoms = make_atom14_masks({"aatype": aa})
        for key in ("atom14_atom_exists", "atom37_atom_exists"):
            atoms[key] = atoms[key] * mask.unsqueeze(-1)
        disto = self.distogram_head(trunk.s_z)
        lddt_logits = self.lddt_head(trunk.states).reshape(trunk.states.shape[0], b, n, -1, self.lddt_bins)
        atom_plddt = 100.0 * categorical_lddt(lddt_logits[-1], bins=self.lddt_bins)
        ptm_logits = self.ptm_head(trunk.s_z)
        lengths = mask.sum(-1).long().tolist()  # batch 1 as ESMFold; padding never enters another chain's pTM
        ptm = torch.stack([compute_tm(ptm_logits[i, :m, :m], max_bin=PAE_MAX_BIN, no_bins=self.distogram_bins)
                           for i, m in enumerate(lengths)])
        pae = compute_predicted_aligned_error(ptm_logits, max_bin=PAE_MAX_BIN, no_bins=self.distogram_bins)
        return FoldOutput(
            **vars(trunk), aatype=aa, atom37_positions=atom14_to_atom37(trunk.positions[-1], atoms),
            **{k: v for k, v in atoms.items() if k != "aatype"},
            distogram_logits=(disto + disto.transpose(1, 2)) / 2, lddt_logits=lddt_logits,
            plddt=atom_plddt[..., CA], atom_plddt=atom_plddt, ptm_logits=ptm_logits, ptm=ptm,
            predicted_aligned_error=pae["predicted_aligned_error"],
        )


def peak_bytes(length: int, cfg: TrunkConfig, chunk: int | None) -> int:
    """Estimated activation peak of one ESMFold-style inference at ``length`` residues.

    Counted: 6 pair-sized float32 tensors ``[N, N, c_z]`` alive at once (the block's input and output, the
    triangle multiplication's a / b / gate / product; the trunk holds no initial or recycled pair state beside
    them), plus one chunk of triangle attention (queries, keys, values ``[chunk, N, c_z]`` each and the scores
    ``[chunk, heads, N, N]``), plus ``FIXED_BYTES`` for the rest (the language model's states, the structure
    module, the heads, the libraries' working memory), plus ``HEAP_SLACK_PAIRS`` pair tensors where those stay in
    the heap that ``xtrimo-fold`` keeps (``allocator.py``: below 256 MiB, N < 724 at c_z = 128). Measured at
    ESMFold's widths as ``xtrimo-fold`` runs, one pass, the weights taken off (benchmarks/speed/esmfold_speed.py,
    docs/structure.md): 0.48-0.54 GB at N = 256 with 48 blocks (estimate 0.87), 1.80 GB at 512 with 48 blocks
    (1.92), 4.08 GB at 1,000 with one block (4.41), 12.65 GB at 2,000 with one block (15.94).
    """
    heads = cfg.c_z // cfg.pairwise_head_width
    rows = chunk or length
    pair = BYTES * length * length * cfg.c_z
    slack = HEAP_SLACK_PAIRS * pair if pair < MMAP_THRESHOLD else 0
    return FIXED_BYTES + slack + 6 * pair + BYTES * rows * length * (3 * cfg.c_z + heads * length)


def chunk_for_memory(length: int, cfg: TrunkConfig, budget_gb: float | None = None) -> int | None:
    """The largest chunk (None = unchunked, else a power of two from 128 down to 1) whose :func:`peak_bytes`
    fits ``budget_gb`` (default :func:`default_budget_gb`); chunks of at most 64 rows over 64 residues, the
    fastest setting on the CPU (docs/structure.md).

    Raises:
        MemoryError: not even a chunk of one row fits (one line with the length, the need and the budget).
    """
    budget = (budget_gb if budget_gb is not None else default_budget_gb()) * 2 ** 30
    candidates = ([None] if length <= 64 else []) + [c for c in (64, 32, 16, 8, 4, 2, 1) if c < length]
    for chunk in candidates:
        if peak_bytes(length, cfg, chunk) <= budget:
            return chunk
    need = peak_bytes(length, cfg, 1) / 2 ** 30
    raise MemoryError(f"{length} residues need about {need:.1f} GB for folding activations even at chunk size 1; "
                      f"the budget is {budget / 2 ** 30:.1f} GB (--max-memory-gb)")


def default_budget_gb() -> float:
    """Half of the GPU's memory when CUDA is available, else half of the machine's RAM."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / 2 ** 31
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 31


def load_esmfold(path: str | Path, device: str | torch.device | None = None) -> EsmFold:
    """An ESMFold checkpoint folder (``config.json`` + weights, as ``save_pretrained`` writes and the Hub serves).

    Raises:
        CheckpointError: a missing folder, not an ESMFold config, or weights that do not match it (one line).
    """
    from transformers import EsmConfig, EsmForProteinFolding

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not an ESMFold checkpoint (no config.json)")
    try:
        config = EsmConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable config.json ({str(exc).splitlines()[0]})") from None
    if not getattr(config, "is_folding_model", False) or config.esmfold_config is None:
        raise CheckpointError(f"{path}: config.json is not an ESMFold (EsmForProteinFolding) config")
    try:
        check_esmfold_config(config.esmfold_config)
        xtrimo_trunk_config(config.esmfold_config.trunk)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    on_cuda = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type == "cuda"
    config.esmfold_config.fp16_esm = bool(config.esmfold_config.fp16_esm and on_cuda)
    try:
        hf, info = EsmForProteinFolding.from_pretrained(path, config=config, local_files_only=True,
                                                        output_loading_info=True, use_safetensors=None)
    except (OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: ESMFold weights do not load ({str(exc).splitlines()[0]})") from None
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys",
                                                              "error_msgs")}
    if problems:
        raise CheckpointError(f"{path}: ESMFold weights do not match config.json: "
                              + "; ".join(f"{k} {sorted(map(str, v))[:5]}" for k, v in problems.items()))
    model = EsmFold(hf.to(device) if device else hf)
    del hf
    return model
