"""A ``tensorflow-datasets`` builder for RNA structure collections on disk.

No download: the folder is the builder's *manual directory*. Two configs:

- ``rna_structures/strand16s``: the paper's 16S split, files ``train.txt``,
  ``valid.txt`` and ``test.txt`` (5-line integer format) in the manual
  directory or in its ``strand16s/`` subfolder -> splits ``train``,
  ``valid``, ``test``.
- ``rna_structures/folder``: every structure file (``.ct``, ``.nopct``,
  ``.bpseq``, ``.db``, ``.dbn``, ``.dot``) below the manual directory, read
  with :func:`keras_symconv.data.read_structures` (family = sub-folder) ->
  one split ``train``; take parts of it with the split API
  (``split="train[:80%]"``).

Each example: ``name``, ``family`` (``""`` when none), ``sequence`` (text),
``partners`` (int32 ``(L,)``, 0-based partner or -1) and ``length``.
:func:`to_model_inputs` maps an example to ``(x (L, 5), y (L, L, 1))``.

Example::

    import tensorflow_datasets as tfds
    from keras_symconv.data import tfds_rna  # registers the builder

    builder = tfds.builder("rna_structures/strand16s", data_dir="~/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="path/to/rna"))
    train = builder.as_dataset(split="train").map(tfds_rna.to_model_inputs)

Needs the ``tfds`` extra: ``pip install 'keras-symconv[tfds]'``.
"""

from __future__ import annotations

import os

import numpy as np

from keras_symconv._backend import import_tensorflow
from keras_symconv.data.rna import STRUCTURE_SUFFIXES, read_strand16s, read_structures

tf = import_tensorflow("keras_symconv.data.tfds_rna (a TensorFlow Datasets builder)")

try:
    import tensorflow_datasets as tfds
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "keras_symconv.data.tfds_rna needs tensorflow-datasets: pip install 'keras-symconv[tfds]'"
    ) from exc

__all__ = ["RnaStructures", "to_model_inputs"]

_SPLIT_FILES = ("train", "valid", "test")


def _strand16s_dir(manual_dir):
    for candidate in (manual_dir, os.path.join(manual_dir, "strand16s")):
        if all(os.path.isfile(os.path.join(candidate, f"{s}.txt")) for s in _SPLIT_FILES):
            return candidate
    raise FileNotFoundError(
        f"{manual_dir}: the strand16s config needs train.txt, valid.txt and test.txt in the "
        "manual directory or in its strand16s/ subfolder"
    )


class RnaStructures(tfds.core.GeneratorBasedBuilder):
    """RNA secondary structures from a local folder (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="strand16s", description="train/valid/test 5-line files"),
        tfds.core.BuilderConfig(name="folder", description="every structure file of a folder"),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the folder with the structure files as the manual directory "
        "(tfds.download.DownloadConfig(manual_dir=...)); nothing is downloaded."
    )

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "name": tfds.features.Text(),
                    "family": tfds.features.Text(),
                    "sequence": tfds.features.Text(),
                    "partners": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                    "length": np.int32,
                }
            ),
            description="RNA secondary structures read from a local folder.",
        )

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        if self.builder_config.name == "strand16s":
            folder = _strand16s_dir(manual_dir)
            return {
                split: self._generate_examples(read_strand16s(os.path.join(folder, f"{split}.txt")))
                for split in _SPLIT_FILES
            }
        per_file = [x for x in STRUCTURE_SUFFIXES if STRUCTURE_SUFFIXES[x] != "strand16s"]
        records = read_structures(manual_dir, suffixes=per_file)
        return {"train": self._generate_examples(records)}

    def _generate_examples(self, records):
        for k, r in enumerate(records):
            yield (
                f"{k:06d}",
                {
                    "name": r.name,
                    "family": r.family or "",
                    "sequence": r.sequence,
                    "partners": r.partners.astype(np.int32),
                    "length": np.int32(len(r)),
                },
            )


def to_model_inputs(example):
    """``(x (L, 5), y (L, L, 1))`` float32 from an example, in-graph."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(["A", "C", "G", "U"]), tf.constant([0, 1, 2, 3], tf.int64)
        ),
        default_value=4,
    )
    letters = tf.strings.bytes_split(example["sequence"])
    x = tf.one_hot(table.lookup(letters), 5, dtype=tf.float32)
    length = tf.shape(example["partners"])[0]
    y = tf.one_hot(example["partners"], length, dtype=tf.float32)  # -1 -> all zeros
    return x, y[..., None]
