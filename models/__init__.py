"""Model builders for the paper's networks (installed as keras_symconv.models).

Each builder returns a Functional ``keras.Model`` made only of registered
layers, so ``.keras`` files load with ``safe_mode=True``.
"""

from keras_symconv.models.contact_map import (
    PAPER_CONTACT_TRAINABLE_PARAMS,
    build_contact_cnn,
    build_contact_scnn,
)
from keras_symconv.models.cosrec import (
    PAPER_COSREC_TRAINABLE_PARAMS,
    ItemScorer,
    all_items_model,
    build_cosrec,
    build_scosrec,
    evaluate_recommender,
    score_all_items,
)
from keras_symconv.models.rna import PAPER_TRAINABLE_PARAMS, build_rna_cnn, build_rna_scnn

__all__ = [
    "build_rna_scnn",
    "build_rna_cnn",
    "PAPER_TRAINABLE_PARAMS",
    "build_contact_scnn",
    "build_contact_cnn",
    "PAPER_CONTACT_TRAINABLE_PARAMS",
    "build_cosrec",
    "build_scosrec",
    "ItemScorer",
    "all_items_model",
    "score_all_items",
    "evaluate_recommender",
    "PAPER_COSREC_TRAINABLE_PARAMS",
]
