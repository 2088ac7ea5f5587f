"""Embedding extraction: token-budget batching, pooling, an on-disk cache, and streaming to shard files.

The cache key is the backbone fingerprint, the pooling and the exact sequences, so a changed checkpoint or input
never reuses stale features.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from xtrimo.data.batching import length_batches
from xtrimo.io import atomic_write, write_json
from xtrimo.progress import Progress
from xtrimo.tokenizer import ResidueTokenizer

log = logging.getLogger(__name__)
POOLS = ("mean", "flatten", "tape", "none")


class Backbone(Protocol):
    name: str
    dim: int
    fingerprint: str
    cacheable: bool

    def embed(self, seqs: list[str]) -> list[np.ndarray]: ...


def embed_residues(backbone: Backbone, seqs: list[str], batch_tokens: int = 16384, progress: bool = False,
                   reduce: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None) -> list[np.ndarray]:
    """Per-residue features ``[L_i, H]`` of every sequence, in input order; ``reduce`` maps each batch's arrays
    (e.g. to pooled ``[H]`` rows) as soon as they are computed."""
    out: list[np.ndarray | None] = [None] * len(seqs)
    # longest first (the peak memory shows at once); +1 for the <eos> or the prefix of the model's layout
    batches = length_batches([len(s) for s in seqs], batch_tokens, extra_tokens=1, descending=True)
    with Progress(len(seqs), f"embed {backbone.name}", "seq", enabled=progress) as bar:
        for batch in batches:
            embs = [e.astype(np.float32, copy=False) for e in backbone.embed([seqs[i] for i in batch])]
            for i, emb in zip(batch, reduce(embs) if reduce else embs):
                out[i] = emb
            bar.update(len(batch))
    return out  # type: ignore[return-value]


def pool(per_residue: list[np.ndarray], mode: str) -> np.ndarray:
    """``[N, H]`` (mean over residues) or ``[N, L_max * H]`` (flatten: position-wise features, zero-padded to the
    longest sequence given; meant for aligned sets such as mutational scans), or ``[N, H + 2]`` (tape: the one-hot
    model of TAPE's PyTorch rewrite, ``tape/models/modeling_onehot.py``, averages the one-hot tokens of
    ``<cls> seq <sep>``; the two special tokens get a column each, so the features carry ``1 / (L + 2)``, the
    length).

    Raises:
        ValueError: unknown mode.
    """
    if mode == "mean":
        return np.stack([e.mean(axis=0) if len(e) else np.zeros(e.shape[1], np.float32) for e in per_residue])
    if mode == "flatten":
        longest, dim = max(len(e) for e in per_residue), per_residue[0].shape[1]
        out = np.zeros((len(per_residue), longest * dim), dtype=np.float32)
        for i, e in enumerate(per_residue):
            out[i, : e.size] = e.reshape(-1)
        return out
    if mode == "tape":
        lengths = np.array([len(e) for e in per_residue], dtype=np.float32)[:, None]
        residues = pool(per_residue, "mean") * lengths / (lengths + 2)
        return np.concatenate([residues, np.repeat(1 / (lengths + 2), 2, axis=1)], axis=1).astype(np.float32)
    raise ValueError(f"unknown pooling {mode!r}; valid: mean, flatten, tape")


def _cache_key(backbone: Backbone, seqs: list[str], mode: str) -> str:
    h = hashlib.sha256(f"{backbone.fingerprint}\n{mode}\n".encode())
    for s in seqs:
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


def features(backbone: Backbone, seqs: list[str], mode: str, cache_dir: str | Path | None = None,
             batch_tokens: int = 16384, progress: bool = False) -> np.ndarray | list[np.ndarray]:
    """Pooled ``[N, D]`` features (``mode`` mean / flatten / tape) or per-residue arrays (``mode='none'``), computed
    once and cached under ``cache_dir`` (.npy, or .npz with offsets for per-residue features)."""
    if mode not in POOLS:
        raise ValueError(f"unknown pooling {mode!r}; valid: {', '.join(POOLS)}")
    path = None
    if cache_dir is not None and backbone.cacheable:
        path = Path(cache_dir) / f"{_cache_key(backbone, seqs, mode)}.{'npz' if mode == 'none' else 'npy'}"
        if path.is_file():
            log.info("embedding cache hit: %s", path)
            return _read_cached(path, mode)
    if mode in ("mean", "tape"):  # pooled batch by batch: a split's per-residue states are never all in memory
        result = np.stack(embed_residues(backbone, seqs, batch_tokens, progress, lambda e: list(pool(e, mode))))
    else:  # per residue, or flatten (zero-padded to the longest sequence of the whole set)
        per_residue = embed_residues(backbone, seqs, batch_tokens, progress)
        result = per_residue if mode == "none" else pool(per_residue, mode)
    if path is not None:
        _write_cached(path, result, mode)
    return result


def _write_cached(path: Path, result: np.ndarray | list[np.ndarray], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        if mode == "none":
            offsets = np.cumsum([0] + [len(e) for e in result])
            np.savez(fh, values=np.concatenate(result), offsets=offsets)
        else:
            np.save(fh, result)


def _read_cached(path: Path, mode: str) -> np.ndarray | list[np.ndarray]:
    if mode != "none":
        return np.load(path)
    with np.load(path) as z:
        values, offsets = z["values"], z["offsets"]
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def _chunks(records: Iterable[tuple[str, str]], max_residues: int) -> Iterator[list[tuple[str, str]]]:
    chunk: list[tuple[str, str]] = []
    size = 0
    for rec in records:
        chunk.append(rec)
        size += len(rec[1])
        if size >= max_residues:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def stream_embeddings(backbone: Backbone, records: Iterable[tuple[str, str]], out_dir: str | Path,
                      mode: str = "mean", batch_tokens: int = 16384, shard_residues: int = 1_000_000,
                      max_length: int | None = None, progress: bool = True) -> dict[str, int]:
    """Embed ``(name, sequence)`` records into ``out_dir/shard_NNNNN.npz`` files, one chunk of about
    ``shard_residues`` residues at a time, so memory stays bounded whatever the input size.

    Shards hold ``names``; ``embeddings`` ``[N, H]`` (mean) or ``values`` + ``offsets`` (per-residue, record
    ``i`` is ``values[offsets[i]:offsets[i+1]]``). ``index.json`` lists the shards (``shard_files``) and the counts.

    Returns:
        counts of records, residues and shards written.
    """
    if mode not in ("mean", "none"):
        raise ValueError(f"xtrimo-embed pooling must be mean or per-residue, got {mode!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = {"records": 0, "residues": 0, "shards": 0}
    shards = []
    tokenizer = ResidueTokenizer()
    bar = Progress(None, f"embed {backbone.name}", "residues", enabled=progress)
    for chunk in _chunks(records, shard_residues):
        names = [n for n, _ in chunk]
        seqs = [s[:max_length] if max_length else s for _, s in chunk]
        for name, seq in zip(names, seqs):  # name the record in the error, not its batch position
            tokenizer.encode(seq, name)
        per_residue = embed_residues(backbone, seqs, batch_tokens)
        path = out / f"shard_{stats['shards']:05d}.npz"
        with atomic_write(path, "wb") as fh:
            if mode == "mean":
                np.savez(fh, names=np.array(names), embeddings=pool(per_residue, "mean"))
            else:
                np.savez(fh, names=np.array(names), values=np.concatenate(per_residue),
                         offsets=np.cumsum([0] + [len(e) for e in per_residue]))
        shards.append({"file": path.name, "records": len(chunk)})
        stats["records"] += len(chunk)
        stats["residues"] += sum(len(s) for s in seqs)
        stats["shards"] += 1
        bar.update(sum(len(s) for s in seqs))
    bar.close()
    meta = {"backbone": backbone.fingerprint, "pool": mode, "dim": backbone.dim, **stats, "shard_files": shards}
    write_json(out / "index.json", meta, indent=1)
    return stats
