"""Shared machinery of the reproduction scripts (``reproduce_*.py``).

Several models are trained side by side, one epoch of each in turn, so that
their epoch times are measured under the same conditions and an interrupted
run has made the same progress on every model. After every epoch a model is
checkpointed (``last.keras``, which holds the optimizer state too, and
``state.json``, written atomically); started again with the same folder, a
run goes on from the last finished epoch. The training batches of epoch
``e`` come from a pipeline seeded with ``(seed, e)``, so a resumed run sees
the same batches as an uninterrupted one.

The epoch and the decoding threshold are chosen on the validation set only
(``best.keras`` + the threshold in ``state.json``); the test set is scored
once, with that model and that threshold, when training has finished.
"""

from _repro.args import MODELS, add_prior_argument, add_run_arguments, pin
from _repro.records import (
    collect_results,
    command_lines,
    log,
    log_start,
    machine,
    mean_sd,
    read_json,
    start_commands,
    write_json,
)
from _repro.runs import RnaItems, Run, model_builder, predict_maps, train_side_by_side
from _repro.script import deadline, parse, run_script, train_log
from keras_symconv.training import THRESHOLDS, choose_threshold, prior_logit

__all__ = [
    "MODELS",
    "THRESHOLDS",
    "RnaItems",
    "Run",
    "add_prior_argument",
    "add_run_arguments",
    "choose_threshold",
    "collect_results",
    "command_lines",
    "deadline",
    "log",
    "log_start",
    "machine",
    "mean_sd",
    "model_builder",
    "pin",
    "predict_maps",
    "parse",
    "prior_logit",
    "read_json",
    "run_script",
    "start_commands",
    "train_log",
    "train_side_by_side",
    "write_json",
]
