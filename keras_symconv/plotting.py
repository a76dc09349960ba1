"""Pictures of pair maps."""

from __future__ import annotations

__all__ = ["heatmap"]


def heatmap(path, maps, titles, suptitle=None):
    """Save side-by-side heatmaps of (L, L) maps as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 4), squeeze=False)
    for ax, m, title in zip(axes[0], maps, titles, strict=True):
        image = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("j")
        ax.set_ylabel("i")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="pair probability")
    if suptitle:
        fig.suptitle(suptitle)
    fig.savefig(path, dpi=100)
    plt.close(fig)
