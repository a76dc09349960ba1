"""Trained models shipped with the package (presets), usable offline.

Each preset is a ``.keras`` file in the package's ``presets/`` folder (no
optimizer state; the decoding threshold chosen on validation stored inside,
see :func:`keras_symconv.training.read_decoding`) with a JSON file beside it
describing how it was trained and what it scores.

- :func:`list_presets`: the names, e.g. ``"strand16s-scnn"``.
- :func:`preset_path`: the ``.keras`` file of a name.
- :func:`preset_metadata`: its description (data, steps, crops, threshold,
  validation and test figures, date).
- :func:`load_preset`: the model, loaded in safe mode.

The builders take the same files: ``build_rna_scnn(weights="strand16s")``.
``symconv rna predict`` accepts a preset name wherever a model path goes and
uses the SCNN preset when no model is named; ``symconv rna models`` lists
them.
"""

from __future__ import annotations

import json
import os

__all__ = [
    "PRESET_FOLDER",
    "DEFAULT_RNA_PRESET",
    "list_presets",
    "preset_path",
    "preset_metadata",
    "load_preset",
    "resolve_weights",
]

#: Where the preset files are installed.
PRESET_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")

#: The preset ``symconv rna predict`` uses when no model is named.
DEFAULT_RNA_PRESET = "strand16s-scnn"


def list_presets():
    """The names of the shipped presets, sorted."""
    if not os.path.isdir(PRESET_FOLDER):
        return []
    return sorted(n[: -len(".keras")] for n in os.listdir(PRESET_FOLDER) if n.endswith(".keras"))


def preset_path(name):
    """The ``.keras`` file of preset ``name``.

    Raises:
        ValueError: ``name`` is no preset (the message lists those there are).
    """
    names = list_presets()
    if name not in names:
        raise ValueError(
            f"Unknown preset {name!r}. Available presets: {', '.join(names) or 'none'}."
        )
    return os.path.join(PRESET_FOLDER, name + ".keras")


def preset_metadata(name):
    """The description of preset ``name`` (a dict read from its JSON file)."""
    path = preset_path(name)[: -len(".keras")] + ".json"
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_preset(name):
    """Preset ``name`` as a ``keras.Model``, loaded with ``safe_mode=True``."""
    import keras

    import keras_symconv  # noqa: F401  (registers the layers)

    return keras.saving.load_model(preset_path(name), safe_mode=True)


def resolve_weights(weights, kind):
    """The file a builder's ``weights`` argument names, or None.

    Args:
        weights: None, a preset's data name (``"strand16s"``: the preset
            ``"strand16s-<kind>"``), a preset name, or a path to a
            ``.keras`` / ``.weights.h5`` file.
        kind: ``"scnn"`` or ``"cnn"``: which twin the builder makes.
    """
    if weights is None:
        return None
    names = list_presets()
    if f"{weights}-{kind}" in names:
        return preset_path(f"{weights}-{kind}")
    if weights in names:
        if not weights.endswith(f"-{kind}"):
            raise ValueError(
                f"Argument `weights`: preset {weights!r} is not an RNA {kind.upper()}. "
                f"Received: weights={weights!r}"
            )
        return preset_path(weights)
    if os.path.isfile(weights):
        return weights
    raise ValueError(
        "Argument `weights` must be None, a preset's data name, a preset name "
        f"({', '.join(names) or 'none shipped'}) or a weights file. Received: weights={weights!r}"
    )
