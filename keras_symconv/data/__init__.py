"""Data formats, synthetic data and tf.data pipelines."""

from keras_symconv.data.protein import (
    AMINO_ACIDS,
    ProteinChain,
    contact_map,
    read_pdb,
    read_protein_json,
    virtual_cb,
)
from keras_symconv.data.rna import (
    BASES,
    RNAStructure,
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
    "read_pdb",
    "read_protein_json",
    "virtual_cb",
    "BASES",
    "RNAStructure",
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
]
