"""Figures of the image track: image grids and the codebook-vs-latents projection (the paper's
codebook-misalignment figure)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_figure  # noqa: E402

MAX_POINTS = 5000


def image_grid(rows: Sequence, path: Path, titles: Sequence[str] = ()) -> Path:
    """One row per tensor ``(N, 3, H, W)`` in [0, 1] (e.g. inputs over reconstructions).

    Args:
        rows: image batches, all with the same N.
        path: PNG to write.
        titles: a label per row.

    Returns:
        ``path``.
    """
    rows = [np.asarray(r.detach().cpu() if hasattr(r, "detach") else r) for r in rows]
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.7 * len(rows)), squeeze=False)
    for i, batch in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(batch):
                ax.imshow(np.clip(batch[j].transpose(1, 2, 0), 0, 1), interpolation="nearest")
        if i < len(titles):
            axes[i][0].set_title(titles[i], loc="left", fontsize=9)
    return save_figure(fig, path)


def pca_projection(latents: np.ndarray, codebooks: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """2-D PCA fitted on the latents and projected for latents and codewords alike.

    Returns:
        ``(latents (N, 2), [codebook (K, 2) ...])``.
    """
    latents = np.asarray(latents, dtype=np.float64)
    mean = latents.mean(0)
    _, _, vt = np.linalg.svd(latents - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 1)))
    return (latents - mean) @ axes, [(np.asarray(c, dtype=np.float64) - mean) @ axes for c in codebooks]


def codebook_vs_latents(latents: np.ndarray, codebooks: Sequence[np.ndarray], path: Path, title: str = "",
                        seed: int = 0) -> Path:
    """Scatter of encoder latents and codewords in the latents' first two principal components.

    Codewords far from the latent cloud are the unused ("misaligned") ones. For residual or
    product quantizers only the first stage/group is shown (its latents are the ones given, or
    the first group's slice).

    Args:
        latents: ``(N, D)`` pre-quantization vectors.
        codebooks: ``(K, d)`` tables; the first one is drawn.
        path: PNG to write.
        title: figure title.
        seed: subsampling seed when there are more than 5000 latents.

    Returns:
        ``path``.
    """
    codebook = np.asarray(codebooks[0])
    latents = np.asarray(latents)[:, : codebook.shape[1]]
    if len(latents) > MAX_POINTS:
        latents = latents[np.random.default_rng(seed).choice(len(latents), MAX_POINTS, replace=False)]
    points, (codewords,) = pca_projection(latents, [codebook])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(points[:, 0], points[:, 1], s=3, c="0.6", alpha=0.4, label=f"latents ({len(points)})")
    ax.scatter(codewords[:, 0], codewords[:, 1], s=18, c="tab:red", marker="x",
               label=f"codewords ({len(codewords)})")
    ax.set_xlabel("PC 1 of the latents")
    ax.set_ylabel("PC 2 of the latents")
    ax.set_title(title or "codebook vs latents (PCA)")
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)
