"""FoldModule: the folding head as a LightningModule (frozen PLM features come precomputed in the batch)."""

from __future__ import annotations

import lightning as L
import torch
from transformers.models.esm.openfold_utils import Rigid

from xtrimo.structure import losses
from xtrimo.structure.config import FoldConfig
from xtrimo.structure.model import FoldingHead
from xtrimo.structure.outputs import FoldOutput, Residues

# AF2 suppl. 1.9 loss weights (FAPE split 0.5 backbone / 0.5 all-atom; no violation or MSA terms here)
WEIGHTS = {"fape_backbone": 0.5, "fape_all_atom": 0.5, "torsion": 1.0, "distogram": 0.3, "plddt": 0.01}


def fold_losses(
    out: FoldOutput, batch: dict[str, torch.Tensor], clamp: float | None = 10.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of FAPE (backbone over all structure-module layers, all-atom on the last), torsion,
    distogram and pLDDT losses; returns ``(loss, breakdown)``. ``clamp=None``: unclamped backbone FAPE."""
    x, xm, aatype = batch["atom37"], batch["atom37_mask"] * batch["mask"][..., None], batch["aatype"]
    t_rot, t_trans, f_mask = losses.backbone_frames(x, xm)
    frames = Rigid.from_tensor_7(out.frames)
    p_rot, p_trans = frames.get_rots().get_rot_mats(), frames.get_trans()
    ca_mask = xm[..., losses.CA_IDX]
    bb = torch.stack([
        losses.fape(p_rot[i], p_trans[i], p_trans[i], t_rot, t_trans, t_trans, f_mask, ca_mask, clamp=clamp)
        for i in range(p_rot.shape[0])
    ]).mean()
    b = x.shape[0]
    pred_atoms = out.atom37_positions.reshape(b, -1, 3)
    atom_mask = (xm * out.atom37_atom_exists).reshape(b, -1)
    aa = losses.fape(p_rot[-1], p_trans[-1], pred_atoms, t_rot, t_trans, x.reshape(b, -1, 3), f_mask, atom_mask)
    sc, alt, t_mask = losses.torsion_angles(aatype, x, xm)
    tors = losses.torsion_loss(out.angles[-1], out.unnormalized_angles[-1], sc, alt, t_mask)
    cb, cb_mask = losses.pseudo_beta(aatype, x, xm)
    disto = losses.distogram_loss(out.distogram_logits, cb, cb_mask)
    ca = losses.CA_IDX
    plddt = losses.plddt_loss(out.lddt_logits[-1][..., ca, :], out.atom37_positions[..., ca, :], x[..., ca, :], ca_mask)
    parts = {"fape_backbone": bb, "fape_all_atom": aa, "torsion": tors, "distogram": disto, "plddt": plddt}
    total = sum(WEIGHTS[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


class FoldModule(L.LightningModule):
    """Trains :class:`FoldingHead` with AdamW, linear warm-up and a recycling count drawn per step."""

    def __init__(self, cfg: FoldConfig, lr: float, warmup_steps: int, weight_decay: float, max_recycles_train: int,
                 seed: int = 0, unclamped_fape_fraction: float = 0.1) -> None:
        super().__init__()
        self.head = FoldingHead(cfg)
        self.lr, self.warmup_steps, self.weight_decay = lr, warmup_steps, weight_decay
        self.max_recycles_train = max_recycles_train
        self.unclamped_fape_fraction = unclamped_fape_fraction
        self.gen = torch.Generator().manual_seed(seed)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # ESMFold / AF2 sample the number of recycles per step so every pass count is supervised
        recycles = int(torch.randint(0, self.max_recycles_train + 1, (1,), generator=self.gen))
        residues = Residues(batch["aatype"], batch["residue_index"], batch["mask"])
        out = self.head(batch["plm_states"], batch.get("plm_attentions"), residues, num_recycles=recycles)
        # AF2 suppl. 1.11.5: backbone FAPE unclamped in a fraction of steps, so errors beyond 10 A also pull
        unclamped = float(torch.rand((), generator=self.gen)) < self.unclamped_fape_fraction
        loss, parts = fold_losses(out, batch, clamp=None if unclamped else 10.0)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["mask"].shape[0])
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=batch["mask"].shape[0])
        return loss

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, self.warmup_steps)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
