"""The pair-map tasks the tool and the benchmarks train: RNA structure and contact maps.

A task knows its builders, how to read its data, its training pipeline, a
model's inputs for one item, the native map and how predictions are scored.
"""

from __future__ import annotations

import dataclasses
import os
import sys

__all__ = ["MODEL_KINDS", "RnaTask", "ContactTask", "TASKS", "build_model"]

#: Model kinds of every task: the symmetric network, the plain CNN, the plain
#: CNN with its output symmetrized.
MODEL_KINDS = ("scnn", "cnn", "cnn-sym")


class RnaTask:
    """RNA secondary structure: items are RNAStructure records."""

    name = "rna"
    title = "RNA"
    input_shapes = ((None, 5),)
    default_crop = 500

    def build(self, kind, **kwargs):
        from keras_symconv.models import build_rna_cnn, build_rna_scnn

        return build_model(kind, build_rna_scnn, build_rna_cnn, **kwargs)

    def read(self, paths, args):
        from keras_symconv.data import read_structures

        return read_structures(paths)

    def synthetic(self, args):
        from keras_symconv.data import synthetic_rna_dataset

        lo, hi = args.synthetic_length
        return synthetic_rna_dataset(args.synthetic, lo, hi, seed=args.seed)

    def dataset(self, items, batch_size, crop, seed, drop_remainder):
        from keras_symconv.data.pipeline import rna_training_dataset

        return rna_training_dataset(
            items, batch_size, crop, seed=seed, drop_remainder=drop_remainder
        )

    def inputs(self, item):
        return [item.one_hot()]

    def native(self, item):
        return item.contact_map()

    def restrict(self, item, prob):
        return prob

    def family(self, item):
        return item.family

    def extra_metrics(self, items, probs):
        return {}


class ContactTask:
    """Protein contact maps: items are ContactExample records."""

    name = "contact"
    title = "contact-map"
    input_shapes = ((None, 25), (None, None, 3))
    default_crop = 100

    def build(self, kind, **kwargs):
        from keras_symconv.models import build_contact_cnn, build_contact_scnn

        return build_model(kind, build_contact_scnn, build_contact_cnn, **kwargs)

    def read(self, paths, args, sequences=False):
        """Examples of structure files (and, with ``sequences``, FASTA files).

        Each chain takes its co-evolution features from ``args.alignment``
        (one file, which must match the only chain) or from the alignment of
        the ``args.alignments`` folder it maps onto; without one they are
        those of a chain without an alignment, and with ``sequences`` (the
        prediction command) the tool says so on stderr.
        """
        from keras_symconv.data.alignment import find_alignment, map_alignment_to_chain
        from keras_symconv.data.contact import contact_example
        from keras_symconv.data.protein import read_protein_files

        chains = read_protein_files(paths, getattr(args, "chain", None), sequences)
        lo, hi = args.length
        chains = [c for c in chains if lo <= len(c) <= hi]
        alignments = self._alignments(getattr(args, "alignments", None))
        single = getattr(args, "alignment", None)
        if single:
            from keras_symconv.data.alignment import read_alignment

            if alignments:
                raise ValueError("give --alignment FILE or --alignments DIR, not both")
            if len(chains) != 1:
                raise ValueError(
                    f"--alignment {single} is for one chain; the inputs have {len(chains)}. "
                    "Use --alignments DIR for several"
                )
            single = read_alignment(single)
        examples = []
        for chain in chains:
            codes = None
            if single:
                codes, info = map_alignment_to_chain(single, chain.sequence)
                info["path"] = single.path
            elif alignments:
                try:
                    alignment, codes, info = find_alignment(alignments, chain.sequence)
                    info["path"] = alignment.path
                except ValueError:
                    print(
                        f"symconv: {chain.name}: no alignment matches; its alignment "
                        "features are zero",
                        file=sys.stderr,
                    )
            elif sequences:
                print(
                    f"symconv: {chain.name}: no alignment given; its alignment features are "
                    "zero, as for a chain without one (--alignments DIR or --alignment FILE "
                    "to give one)",
                    file=sys.stderr,
                )
            example = contact_example(chain, codes)
            if codes is not None:
                example = dataclasses.replace(example, alignment=info)
            examples.append(example)
        return examples

    @staticmethod
    def _alignments(folder):
        if not folder:
            return []
        from keras_symconv.data.alignment import read_alignment

        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: no such folder")
        paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
        alignments = [read_alignment(p) for p in paths if os.path.isfile(p)]
        if not alignments:
            raise ValueError(f"{folder}: no alignment files")
        return alignments

    def synthetic(self, args):
        raise ValueError("symconv contact has no synthetic data: give --data")

    def dataset(self, items, batch_size, crop, seed, drop_remainder):
        from keras_symconv.data.contact import contact_training_dataset

        return contact_training_dataset(
            items, batch_size, crop, seed=seed, drop_remainder=drop_remainder
        )

    def inputs(self, item):
        return [item.sequence_features, item.pair_features]

    def native(self, item):
        return item.contacts * (item.mask[:, None] * item.mask[None])

    def restrict(self, item, prob):
        """Residues without coordinates are left out of the metrics."""
        return prob * (item.mask[:, None] * item.mask[None])

    def family(self, item):
        return None

    def extra_metrics(self, items, probs):
        import numpy as np

        from keras_symconv.metrics import contact_precision

        scores = [
            contact_precision(e.contacts, p, e.mask) for e, p in zip(items, probs, strict=True)
        ]
        return {k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]}


TASKS = {"rna": RnaTask(), "contact": ContactTask()}


def build_model(kind, build_symmetric, build_plain, **kwargs):
    """The ``kind`` (one of :data:`MODEL_KINDS`) of a task's two builders."""
    if kind == "scnn":
        return build_symmetric(**kwargs)
    if kind == "cnn":
        return build_plain(**kwargs)
    if kind == "cnn-sym":
        return build_plain(symmetrize_output=True, **kwargs)
    raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
