"""Data formats, synthetic data and tf.data pipelines (TensorFlow needed, any backend)."""

from keras_symconv._backend import import_tensorflow

import_tensorflow("keras_symconv.data (its tf.data pipelines)")

from keras_symconv.data.protein import (  # noqa: E402 - after the TensorFlow check
    AMINO_ACIDS,
    ProteinChain,
    contact_map,
    read_pdb,
    read_protein_json,
    virtual_cb,
)
from keras_symconv.data.recsys import (  # noqa: E402 - after the TensorFlow check
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
from keras_symconv.data.rna import (  # noqa: E402 - after the TensorFlow check
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
from keras_symconv.data.synthetic import synthetic_rna, synthetic_rna_dataset  # noqa: E402

__all__ = [
    "AMINO_ACIDS",
    "ProteinChain",
    "contact_map",
    "read_pdb",
    "read_protein_json",
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
