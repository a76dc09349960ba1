"""A ``tensorflow-datasets`` builder for protein chains in a local folder.

No download: the folder is the builder's manual directory. Every ``*.json``
or ``*.jsonl`` file in it (chain sets in either layout of
:func:`keras_symconv.data.read_protein_json`) becomes a split named after the
file (``ts50.json`` -> ``ts50``), and all PDB and mmCIF files below it
(``.pdb``, ``.pdb.gz``, ``.cif``, ``.cif.gz``; first chain of each) form the
split ``pdb``.

Each example: ``name``, ``sequence``, ``sequence_features`` ``(L, 25)``
(:func:`keras_symconv.data.features.sequence_features`), ``contacts``
``(L, L)`` uint8 (C-alpha < 8 A), ``mask`` ``(L,)`` uint8 (residue has a
C-alpha). :func:`to_model_inputs` maps an example to the inputs and labels of
:func:`keras_symconv.models.build_contact_scnn`; its pair features carry the
log sequence separation, with the two alignment channels zero (alignments
are not part of these records).

Example::

    import tensorflow_datasets as tfds
    from keras_symconv.data import tfds_protein  # registers the builder

    builder = tfds.builder("protein_chains", data_dir="~/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="path/to/protein"))
    test = builder.as_dataset(split="ts50").map(tfds_protein.to_model_inputs)

Needs the ``tfds`` extra: ``pip install 'keras-symconv[tfds]'``.
"""

from __future__ import annotations

import os

import numpy as np

from keras_symconv._backend import import_tensorflow
from keras_symconv.data.features import N1D, N2D, sequence_features
from keras_symconv.data.labels import IGNORE_LABEL
from keras_symconv.data.protein import (
    STRUCTURE_SUFFIXES,
    contact_map,
    read_protein_json,
    read_structure_file,
)

tf = import_tensorflow("keras_symconv.data.tfds_protein (a TensorFlow Datasets builder)")

try:
    import tensorflow_datasets as tfds
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "keras_symconv.data.tfds_protein needs tensorflow-datasets: "
        "pip install 'keras-symconv[tfds]'"
    ) from exc

__all__ = ["ProteinChains", "to_model_inputs"]


class ProteinChains(tfds.core.GeneratorBasedBuilder):
    """Protein chains from a local folder (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the folder with the .json / .pdb files as the manual directory "
        "(tfds.download.DownloadConfig(manual_dir=...)); nothing is downloaded."
    )

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "name": tfds.features.Text(),
                    "sequence": tfds.features.Text(),
                    "sequence_features": tfds.features.Tensor(shape=(None, N1D), dtype=np.float32),
                    "contacts": tfds.features.Tensor(
                        shape=(None, None), dtype=np.uint8, encoding="zlib"
                    ),
                    "mask": tfds.features.Tensor(shape=(None,), dtype=np.uint8),
                }
            ),
            description="Protein chains with contact maps, read from a local folder.",
        )

    def _split_generators(self, dl_manager):
        folder = os.fspath(dl_manager.manual_dir)
        splits = {}
        for fname in sorted(os.listdir(folder)):
            if fname.endswith((".json", ".jsonl")):
                chains = read_protein_json(os.path.join(folder, fname))
                splits[os.path.splitext(fname)[0]] = self._generate_examples(chains)
        single = tuple(s for s in STRUCTURE_SUFFIXES if not s.startswith(".json"))
        files = []
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            files += [os.path.join(root, f) for f in sorted(names) if f.lower().endswith(single)]
        if files:
            splits["pdb"] = self._generate_examples(
                chain for f in files for chain in read_structure_file(f)
            )
        if not splits:
            raise FileNotFoundError(
                f"{folder}: no structure files ({', '.join(STRUCTURE_SUFFIXES)})"
            )
        return splits

    def _generate_examples(self, chains):
        for k, chain in enumerate(chains):
            contacts, mask = contact_map(chain)
            yield (
                f"{k:06d}",
                {
                    "name": chain.name,
                    "sequence": chain.sequence,
                    "sequence_features": sequence_features(chain.sequence),
                    "contacts": contacts.astype(np.uint8),
                    "mask": mask.astype(np.uint8),
                },
            )


def to_model_inputs(example):
    """``((sequence_features, pair_features), y)`` in-graph; y is IGNORE_LABEL where masked."""
    length = tf.shape(example["mask"])[0]
    idx = tf.range(length)
    sep = tf.math.log1p(tf.cast(tf.abs(idx[:, None] - idx[None, :]), tf.float32))
    pair = tf.concat([tf.zeros([length, length, N2D - 1]), sep[..., None]], axis=-1)
    mask = tf.cast(example["mask"], tf.float32)
    valid = mask[:, None] * mask[None, :] > 0
    y = tf.where(valid, tf.cast(example["contacts"], tf.float32), IGNORE_LABEL)
    return (example["sequence_features"], pair), y[..., None]
