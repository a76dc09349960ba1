"""Data formats and synthetic data (NumPy), and tf.data pipelines (TensorFlow).

The readers, writers and synthetic data need no TensorFlow and run beside
any Keras backend. The pipelines (``keras_symconv.data.pipeline``,
``.contact``, :func:`rec_training_dataset`) and the tfds builders need
TensorFlow installed (any backend: ``tf.data`` feeds every backend's
``fit``) and say so when it is missing.
"""

from keras_symconv.data.protein import (
    AMINO_ACIDS,
    ProteinChain,
    contact_map,
    read_mmcif,
    read_pdb,
    read_protein_fasta,
    read_protein_files,
    read_protein_json,
    read_structure_file,
    virtual_cb,
)
from keras_symconv.data.recsys import (
    PAD_ITEM,
    Interactions,
    RecSplit,
    last_items,
    read_interactions,
    read_split,
    rec_training_dataset,
    sliding_windows,
    split_by_time,
)
from keras_symconv.data.rna import (
    BASES,
    RNAStructure,
    dot_bracket_levels,
    encode_sequence,
    one_hot,
    parse_dot_bracket,
    read_bpseq,
    read_ct,
    read_dot_bracket,
    read_fasta_sequences,
    read_strand16s,
    read_structures,
    to_dot_bracket,
    write_bpseq,
    write_ct,
    write_dot_bracket,
)
from keras_symconv.data.synthetic import synthetic_rna, synthetic_rna_dataset

__all__ = [
    "AMINO_ACIDS",
    "ProteinChain",
    "contact_map",
    "read_mmcif",
    "read_pdb",
    "read_protein_fasta",
    "read_protein_files",
    "read_protein_json",
    "read_structure_file",
    "virtual_cb",
    "BASES",
    "RNAStructure",
    "dot_bracket_levels",
    "encode_sequence",
    "one_hot",
    "parse_dot_bracket",
    "read_bpseq",
    "read_ct",
    "read_dot_bracket",
    "read_fasta_sequences",
    "read_strand16s",
    "read_structures",
    "to_dot_bracket",
    "write_bpseq",
    "write_ct",
    "write_dot_bracket",
    "synthetic_rna",
    "synthetic_rna_dataset",
    "PAD_ITEM",
    "Interactions",
    "RecSplit",
    "read_interactions",
    "split_by_time",
    "read_split",
    "sliding_windows",
    "last_items",
    "rec_training_dataset",
]
