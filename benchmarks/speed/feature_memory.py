"""Peak memory of pooled benchmark features: N random sequences of length L through a checkpoint's hidden states.

A script, not a test. ``--keep-residues`` measures the other way (every per-residue array kept, then pooled), as
the probe did before features were pooled batch by batch.

    python benchmarks/speed/feature_memory.py runs/quickstart/checkpoints/last              # 4,000 x 286, 5 states
    python benchmarks/speed/feature_memory.py runs/quickstart/checkpoints/last --keep-residues
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from xtrimo.benchmarks.backbones import BackboneConfig, build_backbone
from xtrimo.benchmarks.embed import embed_residues, features, pool


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="xtrimo checkpoint directory")
    p.add_argument("--sequences", type=int, default=4000, help="how many sequences (beta-lactamase-sized set)")
    p.add_argument("--length", type=int, default=286, help="residues per sequence")
    p.add_argument("--layers", default="0,1,2,3,-1", help="hidden states read (comma-separated)")
    p.add_argument("--keep-residues", action="store_true", help="keep every per-residue array, then pool")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), args.length)) for _ in range(args.sequences)]
    layers = [int(x) for x in args.layers.split(",")]
    backbone = build_backbone(BackboneConfig(name="xtrimo", checkpoint=args.checkpoint, layers=layers))
    t0 = time.perf_counter()
    x = pool(embed_residues(backbone, seqs), "mean") if args.keep_residues else features(backbone, seqs, "mean")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{x.shape[0]} x {args.length} residues, {len(layers)} hidden states ({x.shape[1]} features), "
          f"{'kept per residue' if args.keep_residues else 'pooled per batch'}: {time.perf_counter() - t0:.0f} s, "
          f"peak RSS {peak:.2f} GB")


if __name__ == "__main__":
    main()
