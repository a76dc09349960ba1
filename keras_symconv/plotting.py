"""Pictures of pair maps."""

from __future__ import annotations

__all__ = ["heatmap", "downsample"]


def downsample(prob, max_side=1000):
    """``(map, factor)``: the largest value of each ``factor x factor`` block.

    The maximum, not the mean, so that a pair stays visible in a long map's
    picture. ``factor`` is 1 (the map itself) when its side is at most
    ``max_side``.
    """
    import numpy as np

    prob = np.asarray(prob)
    side = max(prob.shape)
    factor = -(-side // max_side)
    if factor <= 1:
        return prob, 1
    rows, cols = (-(-n // factor) * factor for n in prob.shape)
    padded = np.zeros((rows, cols), prob.dtype)
    padded[: prob.shape[0], : prob.shape[1]] = prob
    blocks = padded.reshape(rows // factor, factor, cols // factor, factor)
    return blocks.max(axis=(1, 3)), factor


def heatmap(path, maps, titles, suptitle=None, max_side=1000):
    """Save side-by-side heatmaps of (L, L) maps as a PNG.

    Maps longer than ``max_side`` are drawn downsampled
    (:func:`downsample`, the maximum of each block), and the title says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 4), squeeze=False)
    for ax, m, title in zip(axes[0], maps, titles, strict=True):
        side = max(m.shape)
        m, factor = downsample(m, max_side)
        if factor > 1:
            title = f"{title}\n(max of {factor} x {factor} blocks)"
        extent = None if factor == 1 else (0, side, side, 0)
        image = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, interpolation="nearest", extent=extent)
        ax.set_title(title)
        ax.set_xlabel("j")
        ax.set_ylabel("i")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="pair probability")
    if suptitle:
        fig.suptitle(suptitle)
    fig.savefig(path, dpi=100)
    plt.close(fig)
