"""``Folder``: sequences -> PLM states -> folding head -> coordinates, pLDDT, pTM and PDB text.

    from xtrimo.structure import Folder
    result = Folder.from_pretrained(FOLD_DIR).fold("MKTAYIAKQR...")
    open("pred.pdb", "w").write(result.to_pdb())

A folding checkpoint is ``head.safetensors`` + ``config.yaml`` (a :class:`FoldConfig` whose ``plm.checkpoint`` names
the frozen PLM directory, absolute or relative to the folding checkpoint).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from xtrimo.checkpoint import CheckpointError
from xtrimo.io import atomic_directory
from xtrimo.model.glm import XTrimoPGLM
from xtrimo.model.layout import read_batch
from xtrimo.structure.config import FOLD_CONFIG_NAME, FOLD_WEIGHTS_NAME, FoldConfig
from xtrimo.structure.esm_plm import EsmLanguageModel, is_esm_checkpoint
from xtrimo.structure.esmfold import EsmFold, chunk_for_memory, default_budget_gb, load_esmfold
from xtrimo.structure.model import FoldingHead
from xtrimo.structure.outputs import FoldOutput, Residues
from xtrimo.data.pdb import ProteinStructure, sequence_to_aatype
from xtrimo.tokenizer import ResidueTokenizer

log = logging.getLogger("xtrimo.structure")

LINKER = "G" * 25  # ESMFold's complex input: chains joined by a poly-G linker ...
CHAIN_GAP = 512  # ... and a residue-index jump so the relative-position embedding sees separate chains
# ESM-2's rotary positions set no length limit; the memory budget does (EsmFolder.check_sequence)
ESMFOLD_MAX_LENGTH = 100_000


@dataclass
class FoldResult:
    """A predicted structure with its confidence.

    Attributes:
        structure: atom37 coordinates, masks and residue numbers (linkers removed), B-factors = pLDDT.
        plddt: ``[N_res]`` per-residue pLDDT (0-100).
        ptm: predicted TM-score (0-1).
        pae: ``[N_res, N_res]`` predicted aligned error in Angstrom.
    """

    structure: ProteinStructure
    plddt: np.ndarray
    ptm: float
    pae: np.ndarray

    @property
    def sequence(self) -> str:
        return self.structure.sequence

    @property
    def mean_plddt(self) -> float:
        return float(self.plddt.mean())

    def to_pdb(self) -> str:
        return self.structure.to_pdb()


def load_plm(path: str | Path) -> XTrimoPGLM | EsmLanguageModel:
    """The frozen PLM in ``path``: an xTrimoPGLM checkpoint, or ESM-2 in transformers' format (``config.json`` with
    ``model_type: esm``) or as fair-esm's ``.pt`` file (:mod:`xtrimo.structure.esm_plm`).

    Raises:
        CheckpointError: neither (one line).
    """
    return EsmLanguageModel.from_pretrained(path) if is_esm_checkpoint(path) else XTrimoPGLM.from_pretrained(path)


def plm_features(
    plm: XTrimoPGLM | EsmLanguageModel, sequences: list[str], with_attentions: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Frozen PLM outputs aligned to residues (special tokens dropped), read in the PLM's own mode.

    Returns:
        states ``[B, N, num_layers + 1, H]``, attentions ``[B, num_layers * heads, N, N]`` (or None) and the residue
        mask ``[B, N]``.
    """
    if isinstance(plm, EsmLanguageModel):
        return plm.features(sequences, with_attentions)
    inputs, first = read_batch(sequences, plm.config.read_mode)
    inputs = inputs.to(next(plm.parameters()).device)
    n, cols = max(len(s) for s in sequences), slice(first, first + max(len(s) for s in sequences))
    with torch.no_grad():
        out = plm(inputs, output_hidden_states=True, output_attentions=with_attentions, return_logits=False)
    states = torch.stack(out["hidden_states"], dim=2)[:, cols]
    attn = torch.cat(out["attentions"], dim=1)[:, :, cols, cols] if with_attentions else None
    mask = torch.zeros(len(sequences), n, device=inputs.input_ids.device)
    for i, s in enumerate(sequences):
        mask[i, : len(s)] = 1
    return states.float(), None if attn is None else attn.float(), mask


def split_chains(sequence: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Join ``A:B:...`` chains for folding.

    Returns:
        the joined sequence, ``[N]`` residue index (with chain gaps), ``[N]`` chain index and ``[N]`` bool mask of
        real (non-linker) residues.
    """
    chains = sequence.split(":")
    if any(not c for c in chains):
        raise ValueError("empty sequence" if len(chains) == 1 else f"empty chain in {sequence[:40]!r}")
    parts, resid, chain, keep, offset = [], [], [], [], 0
    for i, c in enumerate(chains):
        if i:
            parts.append(LINKER)
            resid.extend(range(offset, offset + len(LINKER)))
            chain.extend([i - 1] * len(LINKER))
            keep.extend([False] * len(LINKER))
            offset += len(LINKER) + CHAIN_GAP
        parts.append(c)
        resid.extend(range(offset, offset + len(c)))
        chain.extend([i] * len(c))
        keep.extend([True] * len(c))
        offset += len(c)
    return "".join(parts), np.array(resid), np.array(chain), np.array(keep)


class Folder:
    """Folds sequences: a frozen PLM and a trained :class:`FoldingHead` (:meth:`from_pretrained`), or an ESMFold
    checkpoint (:meth:`from_esmfold`)."""

    def __init__(self, plm: XTrimoPGLM | EsmLanguageModel, head: FoldingHead) -> None:
        self.plm = plm.eval()
        self.head = head.eval()
        self.cfg = head.cfg
        self.max_length = head.cfg.max_length

    @classmethod
    def from_pretrained(cls, path: str | Path, plm_checkpoint: str | Path | None = None) -> Folder:
        """Load ``path/config.yaml`` + ``path/head.safetensors`` and the PLM it names (or ``plm_checkpoint``).

        Raises:
            CheckpointError: missing files, a PLM of another shape, or head weights that do not match the config.
        """
        path = Path(path)
        if not (path / FOLD_CONFIG_NAME).is_file() or not (path / FOLD_WEIGHTS_NAME).is_file():
            raise CheckpointError(
                f"{path}: not a folding checkpoint (needs {FOLD_CONFIG_NAME} and {FOLD_WEIGHTS_NAME})")
        cfg = FoldConfig.from_file(path / FOLD_CONFIG_NAME)
        plm_dir = Path(plm_checkpoint or cfg.plm.checkpoint)
        if not plm_dir.is_absolute():
            plm_dir = path / plm_dir
        plm = load_plm(plm_dir)
        shape = (plm.config.num_layers, plm.config.hidden_size, plm.config.num_attention_heads)
        if shape != (cfg.plm.num_layers, cfg.plm.hidden_size, cfg.plm.num_heads):
            raise CheckpointError(f"{plm_dir}: PLM (layers, hidden, heads) = {shape} but the head was trained on "
                                  f"{(cfg.plm.num_layers, cfg.plm.hidden_size, cfg.plm.num_heads)}")
        head = FoldingHead(cfg)
        try:
            head.load_state_dict(load_file(str(path / FOLD_WEIGHTS_NAME)), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path}: head weights do not match config.yaml ({str(exc).splitlines()[0]})") from None
        return cls(plm, head)

    @staticmethod
    def from_esmfold(path: str | Path, device: str | None = None, max_memory_gb: float | None = None) -> EsmFolder:
        """An ESMFold checkpoint folder (e.g. a downloaded ``facebook/esmfold_v1``) through xtrimo's trunk
        (:mod:`xtrimo.structure.esmfold`); the chunk size of each batch fits ``max_memory_gb`` (default: half
        of the RAM or of the GPU's memory).

        Raises:
            CheckpointError: a missing or mismatched ESMFold folder (one line).
        """
        return EsmFolder(load_esmfold(path, device), max_memory_gb)

    def save_pretrained(self, path: str | Path) -> None:
        save_head(self.head, path)

    def check_sequence(self, sequence: str, name: str = "<input>") -> str:
        """The upper-cased sequence, or ValueError / InvalidResidueError naming ``name`` (empty, invalid, too long)."""
        seq = sequence.strip().upper()
        if not seq.replace(":", ""):
            raise ValueError(f"record {name!r}: empty sequence")
        joined = split_chains(seq)[0]
        if len(joined) > self.max_length:
            raise ValueError(f"record {name!r}: {len(joined)} residues (linkers included) is over the limit "
                             f"max_length={self.max_length}")
        ResidueTokenizer().encode(joined, name)  # InvalidResidueError names the record and position
        return seq

    def predict(self, sequences: list[str], residues: Residues, num_recycles: int | None,
                chunk_size: int | None) -> FoldOutput:
        """The model's outputs for joined sequences and their :class:`Residues` (``[B, N]``, right-padded)."""
        states, attn, _ = plm_features(self.plm, sequences, self.cfg.use_attention_maps)
        return self.head(states, attn, residues, num_recycles, chunk_size)

    @torch.no_grad()
    def fold_batch(
        self, sequences: list[str], names: list[str] | None = None, num_recycles: int | None = None,
        chunk_size: int | None = None,
    ) -> list[FoldResult]:
        """Fold several sequences in one padded batch (``:`` separates the chains of a complex).

        Raises:
            ValueError / InvalidResidueError: an empty, invalid or too long sequence, naming the record.
        """
        names = names or [f"#{i}" for i in range(len(sequences))]
        seqs = [self.check_sequence(s, n) for s, n in zip(sequences, names)]
        parts = [split_chains(s) for s in seqs]
        n = max(len(p[0]) for p in parts)
        aatype = torch.zeros(len(seqs), n, dtype=torch.long)
        resid = torch.zeros(len(seqs), n, dtype=torch.long)
        mask = torch.zeros(len(seqs), n)
        for i, (s, r, _, _) in enumerate(parts):
            aatype[i, : len(s)] = torch.from_numpy(sequence_to_aatype(s))
            resid[i, : len(s)] = torch.from_numpy(r)
            mask[i, : len(s)] = 1
        dev = self.device
        out = self.predict([p[0] for p in parts], Residues(aatype.to(dev), resid.to(dev), mask.to(dev)),
                           num_recycles, chunk_size)
        return [self._result(out, i, parts[i]) for i in range(len(seqs))]

    @property
    def device(self) -> torch.device:
        return next(self.plm.parameters()).device

    def fold(self, sequence: str, num_recycles: int | None = None, chunk_size: int | None = None) -> FoldResult:
        """Fold one sequence (chains of a complex separated by ``:``)."""
        return self.fold_batch([sequence], None, num_recycles, chunk_size)[0]

    def _result(self, out: FoldOutput, i: int, part: tuple) -> FoldResult:
        seq, resid, chain, keep = part
        n = len(seq)
        pos = out.atom37_positions[i, :n].cpu().numpy()[keep]
        mask = out.atom37_atom_exists[i, :n].cpu().numpy()[keep]
        plddt = out.plddt[i, :n].cpu().numpy()[keep]
        atom_plddt = out.atom_plddt[i, :n].cpu().numpy()[keep]
        pae = out.predicted_aligned_error[i, :n, :n].cpu().numpy()[np.ix_(keep, keep)]
        chain = chain[keep]
        starts = np.searchsorted(chain, chain)  # residue numbers restart at 1 in every chain
        structure = ProteinStructure(
            aatype=sequence_to_aatype(seq)[keep], atom_positions=pos, atom_mask=mask,
            residue_index=np.arange(len(chain)) - starts + 1, chain_index=chain, b_factors=atom_plddt * mask,
        )
        return FoldResult(structure=structure, plddt=plddt, ptm=float(out.ptm[i]), pae=pae)


class EsmFolder(Folder):
    """:class:`Folder` over an ESMFold checkpoint (:class:`~xtrimo.structure.esmfold.EsmFold`)."""

    def __init__(self, model: EsmFold, max_memory_gb: float | None = None) -> None:
        self.model = model.eval()
        self.max_memory_gb = max_memory_gb
        self.max_length = ESMFOLD_MAX_LENGTH

    @property
    def device(self) -> torch.device:
        return self.model.af2_to_esm.device

    def check_sequence(self, sequence: str, name: str = "<input>") -> str:
        """As :meth:`Folder.check_sequence`, and the chain must fit the memory budget at some chunk size."""
        seq = super().check_sequence(sequence, name)
        try:
            chunk_for_memory(len(split_chains(seq)[0]), self.model.trunk_cfg, self.max_memory_gb)
        except MemoryError as exc:
            raise ValueError(f"record {name!r}: {exc}") from None
        return seq

    def predict(self, sequences: list[str], residues: Residues, num_recycles: int | None,
                chunk_size: int | None) -> FoldOutput:
        """ESMFold's outputs; the chunk fits the budget shared by the batch's chains."""
        b, n = residues.aatype.shape
        budget = (self.max_memory_gb if self.max_memory_gb is not None else default_budget_gb()) / b
        chunk = chunk_size or chunk_for_memory(n, self.model.trunk_cfg, budget)
        return self.model(residues, num_recycles, chunk)

    def save_pretrained(self, path: str | Path) -> None:
        raise TypeError("an ESMFold folder is read from its checkpoint; there is no xtrimo head to save")


def save_head(head: FoldingHead, path: str | Path) -> None:
    """Write ``head.safetensors`` + ``config.yaml`` atomically (the PLM is not copied, only named)."""
    with atomic_directory(path) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
        save_file(state, str(tmp / FOLD_WEIGHTS_NAME), metadata={"format": "pt", "xtrimo": "fold-head-1"})
        head.cfg.save(tmp / FOLD_CONFIG_NAME)
