"""Training loops of the tool: the pair-map models (``fit``, or a custom loop
under ``MultiWorkerMirroredStrategy``) and the recommenders.

``settings`` is an object with the training options as attributes (the
``argparse`` namespace of ``symconv rna train``, ``contact train`` or ``rec
train``; see ``symconv <app> train --help`` for each).
"""

from __future__ import annotations

import json
import os
import time

from keras_symconv._backend import require_tensorflow
from keras_symconv.inference import (
    evaluate_structures,
    load_model,
    load_recommender,
    make_predictor,
    predict_items,
    resolve_threshold,
    trainable_params,
    validation_threshold,
)
from keras_symconv.training import write_decoding

__all__ = [
    "make_strategy",
    "worker_role",
    "output_prior",
    "train_model",
    "fit_multiworker",
    "read_rec_split",
    "train_recommender",
]


def make_strategy(name):
    """A ``tf.distribute`` strategy by name: ``default``, ``mirrored`` or ``multiworker``."""
    tf = require_tensorflow(f"Training with a tf.distribute strategy ({name!r})")

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_role():
    """``(is_chief, worker index)`` from TF_CONFIG (chief when there is none)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in config.get("cluster", {})
    return (kind == "chief" or (kind == "worker" and index == 0 and not has_chief)), index


def output_prior(task, train, args):
    """The models' initial output logit: the prior log-odds of the training crops, or 0.

    One pass of the training pipeline (the run's seed and crop) is counted by
    :func:`keras_symconv.training.prior_logit`; ``--no-output-prior`` starts
    at 0 as the paper did.
    """
    if not getattr(args, "output_prior", True):
        return 0.0
    from keras_symconv.training import prior_logit

    dataset = task.dataset(train, args.batch_size, args.crop, args.seed, drop_remainder=False)
    try:
        return prior_logit(dataset, args.positive_weight)
    except ValueError as exc:
        raise ValueError(f"--data: {exc} Give --no-output-prior to start at 0.") from exc


def train_model(task, kind, train, valid, args, out_dir, strategy=None, verbose=1):
    """Train one model; write model.keras (best), savedmodel/, run.json. Returns a summary."""
    import keras
    import numpy as np

    tf = require_tensorflow("symconv's training (tf.distribute, SavedModel export)")

    from keras_symconv.losses import PairBinaryCrossentropy
    from keras_symconv.metrics import PairMetric

    strategy = strategy or tf.distribute.get_strategy()
    is_chief, index = worker_role()
    if args.strategy == "multiworker" and not is_chief:
        out_dir = os.path.join(out_dir, f"worker_{index}")
    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    output_bias = output_prior(task, train, args)

    with strategy.scope():
        # Global batch statistics under a strategy, so that every replica
        # also ends with the same batch-norm moving statistics.
        model = task.build(
            kind,
            synchronized_batch_norm=args.strategy != "default",
            batch_norm_momentum=args.bn_momentum,
            output_bias=output_bias,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(args.lr),
            loss=PairBinaryCrossentropy(positive_weight=args.positive_weight),
            metrics=[PairMetric("accuracy", name="pair_acc")],
            jit_compile=args.jit,
        )

    replicas = strategy.num_replicas_in_sync
    steps = max(1, len(train) // args.batch_size)
    # One global-batch pipeline, the same (seeded) on every worker; under a
    # distribution strategy Keras splits each global batch across the
    # replicas. Full batches only then, so that every replica gets data.
    dataset = task.dataset(
        train, args.batch_size, args.crop, args.seed, drop_remainder=replicas > 1
    ).repeat()

    predict = make_predictor(model, task)
    history: list[dict] = []
    model_path = os.path.join(out_dir, "model.keras")
    best_so_far = [-1.0]

    def end_of_epoch(epoch, seconds, logs):
        """Decoded validation metrics; keeps the best model. Updates `logs`."""
        probs, _ = predict_items(predict, valid, task)
        result = validation_threshold(valid, probs, args.threshold, task)
        logs.update(
            val_ppv=result["ppv"], val_sen=result["sensitivity"], val_acc=result["accuracy"]
        )
        history.append(
            {
                "epoch": epoch + 1,
                "seconds": seconds,
                "threshold": result["threshold"],
                **{k: float(v) for k, v in logs.items()},
            }
        )
        improved = result["accuracy"] > best_so_far[0]
        if improved:
            best_so_far[0] = result["accuracy"]
            model.save(model_path)
            write_decoding(
                model_path,
                result["threshold"],
                chosen_on="validation" if args.threshold is None else "given",
                epoch=epoch + 1,
                valid_sequences=len(valid),
                valid_ppv=result["ppv"],
                valid_sensitivity=result["sensitivity"],
                valid_accuracy=result["accuracy"],
            )
        if verbose != 1:  # the progress bar already shows val_ppv/val_sen/val_acc
            print(
                f"epoch {epoch + 1}: {seconds:.1f}s  loss {logs.get('loss', float('nan')):.4f}"
                f"  val PPV {result['ppv']:.3f}  Sen {result['sensitivity']:.3f}  "
                f"Acc {result['accuracy']:.3f} (threshold {result['threshold']:g})"
                + ("  (best, saved)" if improved else ""),
                flush=True,
            )

    if args.strategy == "multiworker":
        fit_multiworker(model, strategy, dataset, steps, args, end_of_epoch)
    else:

        class Validate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                end_of_epoch(
                    epoch, time.perf_counter() - self.start, logs if logs is not None else {}
                )

        model.fit(
            dataset,
            epochs=args.epochs,
            steps_per_epoch=steps,
            callbacks=[Validate()],
            shuffle=False,  # the pipeline shuffles, seeded
            verbose=verbose,
        )
    best = load_model(model_path, task)
    best.export(os.path.join(out_dir, "savedmodel"), verbose=False)
    best_predict = make_predictor(best, task)
    threshold, _ = resolve_threshold(None, model_path)
    final = evaluate_structures(best_predict, valid, threshold, task=task)
    summary = {
        "model": kind,
        "trainable_params": trainable_params(model),
        "train_sequences": len(train),
        "valid_sequences": len(valid),
        "seconds_per_epoch": float(np.median([h["seconds"] for h in history])),
        "best_valid": {
            k: v for k, v in final.items() if k not in ("per_sequence", "names", "families")
        },
        "inference_seconds_per_sequence": final["seconds_per_sequence"],
        "threshold": threshold,
        "output_bias": output_bias,
        "history": history,
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "replicas": replicas,
        "model_path": model_path,
        "savedmodel_path": os.path.join(out_dir, "savedmodel"),
    }
    with open(os.path.join(out_dir, "run.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    return summary, best_predict


def fit_multiworker(model, strategy, dataset, steps, args, end_of_epoch):
    """A custom loop for MultiWorkerMirroredStrategy.

    Keras 3's ``fit`` fails under this strategy (keras-team/keras#20585: the
    symbolic build reduces a PerReplica batch), so the train step is written
    out: per-replica loss scaled to the global batch, plus the layers'
    regularization losses, gradients all-reduced by the strategy.
    """
    tf = require_tensorflow("The multi-worker training loop")

    loss_fn = model.loss
    optimizer = model.optimizer
    distributed = strategy.experimental_distribute_dataset(dataset)
    iterator = iter(distributed)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            per_sample = loss_fn.call(y, y_pred)
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=args.batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function(jit_compile=args.jit)
    def train_step():
        x, y = next(iterator)
        return strategy.reduce("SUM", strategy.run(replica_step, args=(x, y)), axis=None)

    for epoch in range(args.epochs):
        start = time.perf_counter()
        losses = [float(train_step()) for _ in range(steps)]
        logs = {"loss": sum(losses) / len(losses)}
        end_of_epoch(epoch, time.perf_counter() - start, logs)


def read_rec_split(args, user_map=None, item_map=None):
    """(split, user_map, item_map, data description) from the data options."""
    from keras_symconv.data.recsys import read_interactions, read_split, split_by_time

    if args.data and (args.train or args.valid or args.test):
        raise ValueError("give either --data or --train/--valid/--test, not both")
    if args.data:
        fractions = tuple(args.split or (0.7, 0.1, 0.2))
        inter = read_interactions(args.data, user_map, item_map)
        split = split_by_time(inter, fractions)
        described = {"data": list(args.data), "split": list(fractions)}
        return split, inter.user_map, inter.item_map, described
    if args.split:
        raise ValueError("--split applies to --data only")
    if not (args.train and args.test):
        raise ValueError("give --data FILE..., or --train FILE and --test FILE")
    split, users, items = read_split(args.train, args.valid, args.test, user_map, item_map)
    described = {"train": args.train, "valid": args.valid, "test": args.test}
    return split, users, items, described


def _counts(split):
    return {
        part: int(sum(len(s) for s in getattr(split, part))) for part in ("train", "valid", "test")
    }


def train_recommender(args, verbose=1):
    """Train one model as ``symconv rec train`` does; returns the run summary."""
    import keras
    import numpy as np

    from keras_symconv.data.recsys import rec_training_dataset
    from keras_symconv.losses import SampledBinaryCrossentropy
    from keras_symconv.models import build_cosrec, build_scosrec, evaluate_recommender

    split, user_map, item_map, described = read_rec_split(args)
    has_valid = any(len(v) for v in split.valid)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "vocabulary.json"), "w") as handle:
        json.dump({"users": user_map, "items": item_map, **described}, handle)
    keras.utils.set_random_seed(args.seed)
    build = build_scosrec if args.model == "scosrec" else build_cosrec
    model = build(
        split.num_users,
        split.num_items,
        sequence_length=args.sequence_length,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        l2=args.l2,
    )
    model.compile(keras.optimizers.Adam(args.lr), SampledBinaryCrossentropy())
    dataset, steps = rec_training_dataset(
        split.train,
        split.num_items,
        args.sequence_length,
        args.targets,
        args.negatives,
        args.batch_size,
        args.seed,
    )
    model_path = os.path.join(args.out, "model.keras")
    history, best = [], {"map": -1.0}

    class Validate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            entry = {
                "epoch": epoch + 1,
                "seconds": time.perf_counter() - self.start,
                "loss": float((logs or {}).get("loss", float("nan"))),
            }
            last = epoch + 1 == args.epochs
            if has_valid and ((epoch + 1) % args.evaluate_every == 0 or last):
                entry["valid"] = evaluate_recommender(model, split, "valid")
                if entry["valid"]["map"] > best["map"]:
                    best.update(entry["valid"], epoch=epoch + 1)
                    model.save(model_path)
            elif not has_valid and last:
                best.update(epoch=epoch + 1)
                model.save(model_path)
            history.append(entry)
            if verbose:
                v = entry.get("valid")
                print(
                    f"epoch {epoch + 1}: {entry['seconds']:.1f}s  loss {entry['loss']:.4f}"
                    + (f"  valid MAP {v['map']:.4f}" if v else "")
                    + ("  (best, saved)" if best.get("epoch") == epoch + 1 else ""),
                    flush=True,
                )

    model.fit(dataset, epochs=args.epochs, callbacks=[Validate()], shuffle=False, verbose=0)
    from keras_symconv.models import all_items_model

    chosen = load_recommender(model_path)
    test = evaluate_recommender(chosen, split, "test")
    all_items_model(chosen).export(os.path.join(args.out, "savedmodel"), verbose=False)
    summary = {
        "model": args.model,
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "users": split.num_users,
        "items": split.num_items - 1,
        "interactions": _counts(split),
        "training_windows_per_epoch": steps,
        "seconds_per_epoch": float(np.median([h["seconds"] for h in history])),
        "best_epoch": best["epoch"],
        "valid": {k: v for k, v in best.items() if k != "epoch"} if has_valid else None,
        "test": test,
        "history": history,
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "model_path": model_path,
        "savedmodel_path": os.path.join(args.out, "savedmodel"),
    }
    with open(os.path.join(args.out, "run.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    return summary
