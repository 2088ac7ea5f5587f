"""Residue-level tokenizer with the released ProteinGLM / xTrimoPGLM token ids.

Ids follow Megatron's ``ResidueLevelTokenizer`` and the Hugging Face ``tokenizer_config.json`` of
``biomap-research/proteinglm-*``: ``<pad>``=0, residues 1-27, special tokens 28-35, vocabulary padded to 128.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import torch

RESIDUES = "LAGVSERTIDPKQNFYMHWCXBUZO.-"
STANDARD_RESIDUES = "ACDEFGHIKLMNPQRSTVWY"
SPECIAL_TOKENS = ("<mask>", "<gmask>", "<smask>", "<eod>", "<sop>", "<eop>", "<eos>", "<unk>")

PAD_ID = 0
MASK_ID = 28
GMASK_ID = 29
SMASK_ID = 30
EOD_ID = 31
SOP_ID = 32
EOP_ID = 33
EOS_ID = 34
UNK_ID = 35
PADDED_VOCAB_SIZE = 128
FIRST_RESIDUE_ID = 1
LAST_RESIDUE_ID = len(RESIDUES)  # 27

_LUT = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(RESIDUES, start=FIRST_RESIDUE_ID):
    _LUT[ord(_c)] = _i
    _LUT[ord(_c.lower())] = _i


class InvalidResidueError(ValueError):
    """A sequence holds a character that is not a residue symbol."""


class ResidueTokenizer:
    """Maps protein sequences to ProteinGLM ids and back.

    The ids are upstream's (``tokenizer_reference.json`` of the upstream tokenizer). Two differences, on purpose:
    lower case is upper-cased (upstream maps every lower-case residue to ``<unk>``), and a sequence is read one
    residue per character (upstream splits on whitespace, so an unspaced sequence is a single ``<unk>``);
    :meth:`encode_text` reads upstream's spaced form. Any other character raises :class:`InvalidResidueError`
    naming the record and the 1-based position. Where special tokens go is :mod:`xtrimo.model.layout`'s job.
    """

    pad_id = PAD_ID
    mask_id = MASK_ID
    gmask_id = GMASK_ID
    smask_id = SMASK_ID
    eod_id = EOD_ID
    sop_id = SOP_ID
    eop_id = EOP_ID
    eos_id = EOS_ID
    unk_id = UNK_ID
    vocab_size = PADDED_VOCAB_SIZE

    def __init__(self) -> None:
        self.id_to_token = ["<pad>", *RESIDUES, *SPECIAL_TOKENS]
        self.token_to_id = {t: i for i, t in enumerate(self.id_to_token)}
        self.residue_ids = torch.arange(FIRST_RESIDUE_ID, LAST_RESIDUE_ID + 1)
        self.standard_ids = torch.tensor([self.token_to_id[c] for c in STANDARD_RESIDUES])

    def encode(self, sequence: str, name: str = "<input>") -> np.ndarray:
        """Residue ids of ``sequence`` (no special tokens), ``int64 [L]``.

        Raises:
            InvalidResidueError: on a character outside the 27 residue symbols, naming ``name`` and the position.
        """
        raw = np.frombuffer(sequence.encode("latin-1", errors="replace"), dtype=np.uint8)
        ids = _LUT[raw]
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            pos = int(bad[0])
            raise InvalidResidueError(
                f"invalid residue {sequence[pos]!r} at position {pos + 1} of record {name!r}"
            )
        return ids

    def encode_text(self, text: str, name: str = "<input>") -> np.ndarray:
        """Ids of upstream-style text: residues and ``<special>`` names, with or without spaces
        (``"<gmask><sop><eos>M L F"`` -> ``[29, 32, 34, 17, 1, 15]``).

        Raises:
            InvalidResidueError: an unknown ``<name>`` or a character that is no residue, naming ``name``.
        """
        out: list[int] = []
        for part in re.split(r"(<[^<>\s]*>)", text):
            if part.startswith("<"):
                if part not in self.token_to_id:
                    raise InvalidResidueError(f"unknown special token {part!r} in {name!r}")
                out.append(self.token_to_id[part])
            else:
                out.extend(self.encode("".join(part.split()), name).tolist())
        return np.array(out, dtype=np.int64)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Residue string of ``ids``; special tokens are dropped (or written as ``<name>``)."""
        out = []
        for i in ids:
            i = int(i)
            if FIRST_RESIDUE_ID <= i <= LAST_RESIDUE_ID:
                out.append(RESIDUES[i - 1])
            elif not skip_special and i < len(self.id_to_token):
                out.append(self.id_to_token[i])
        return "".join(out)

    def __len__(self) -> int:
        return self.vocab_size
