"""``symconv rna``: RNA secondary structure."""

from __future__ import annotations

import json
import os
import sys

from keras_symconv.cli import pairs
from keras_symconv.cli._common import THRESHOLD_HELP, add_tiling, log_line, read_inputs, stems
from keras_symconv.inference import load_model, make_predictor, resolve_threshold
from keras_symconv.plotting import heatmap


def _model_and_inputs(arguments):
    """``(model, inputs)``: the first argument is the model when it is a ``.keras``
    file or a preset's name; otherwise the default preset predicts them all."""
    from keras_symconv.pretrained import DEFAULT_RNA_PRESET, list_presets

    first = arguments[0]
    if first.endswith(".keras") or first in list_presets():
        if len(arguments) == 1:
            raise ValueError(f"{first}: a model, but no input files follow it")
        return first, arguments[1:]
    if DEFAULT_RNA_PRESET not in list_presets():
        raise ValueError(
            f"no model named and no {DEFAULT_RNA_PRESET} preset installed: give a .keras file"
        )
    return DEFAULT_RNA_PRESET, arguments


def cmd_models(args):
    """List the shipped presets with how they were trained and what they score."""
    from keras_symconv.pretrained import list_presets, preset_metadata, preset_path

    names = list_presets()
    if not names:
        print("no presets installed")
        return 0
    print("| preset | model | params | trained | threshold | valid Acc | test PPV / Sen / Acc "
          "| date |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        m = preset_metadata(name)
        t, v, tr = m["test"], m["valid"], m["training"]
        print(
            f"| {name} | {m['model']} | {m['trainable_params']:,} | {tr['steps']} steps "
            f"({tr['epochs']} epochs), crops {'/'.join(map(str, tr['crops']))} | "
            f"{m['threshold']:g} | {v['accuracy']:.3f} | {t['ppv']:.3f} / {t['sensitivity']:.3f}"
            f" / {t['accuracy']:.3f} | {m['date']} |"
        )
    print(f"data: {preset_metadata(names[0])['data']}")
    if args.verbose:
        for name in names:
            print(f"\n{name} ({preset_path(name)}):")
            print(json.dumps(preset_metadata(name), indent=1))
    return 0


def cmd_predict(args):
    from keras_symconv.data import RNAStructure, dot_bracket_levels, write_bpseq, write_ct
    from keras_symconv.metrics import decode_pairs

    model_name, inputs = _model_and_inputs(args.inputs)
    model = load_model(model_name)
    threshold, how = resolve_threshold(args.threshold, model_name)
    print(f"model {model_name}; decoding threshold {threshold:g} ({how})", flush=True)
    predict = make_predictor(model, tile=args.tile, tile_size=args.tile_size, log=log_line)
    os.makedirs(args.out, exist_ok=True)
    stem = stems()
    for name, sequence in read_inputs(inputs):
        structure = RNAStructure.from_pairs(name, sequence, [])
        prob = predict(structure)
        pairs = decode_pairs(prob, threshold, strict=True)
        structure = RNAStructure.from_pairs(name, sequence, pairs)
        base = os.path.join(args.out, stem(name))
        # The formats that hold any pairing first: a structure that
        # dot-bracket cannot write in full must not cost them.
        write_ct(base + ".ct", [structure])
        write_bpseq(base + ".bpseq", structure)
        if not args.no_png:
            heatmap(base + ".png", [prob], [f"{name} ({len(sequence)} nt)"])
        text, omitted = dot_bracket_levels(structure)
        with open(base + ".dbn", "w") as handle:
            handle.write(f">{name}\n{sequence}\n{text}\n")
        if omitted:
            shown = ", ".join(f"{i + 1}-{j + 1}" for i, j in omitted[:10])
            more = f" and {len(omitted) - 10} more" if len(omitted) > 10 else ""
            print(
                f"symconv: warning: {name}: {len(omitted)} of {len(pairs)} pairs need more "
                f"crossing levels than dot-bracket has; {base}.dbn leaves them out "
                f"({shown}{more}); {base}.ct and .bpseq hold every pair",
                file=sys.stderr,
                flush=True,
            )
        suffixes = ".ct, .bpseq, .dbn" + ("" if args.no_png else ", .png")
        print(f"{name}: {len(pairs)} pairs -> {base} ({suffixes})", flush=True)
    return 0


def add_parser(sub):
    """Add ``symconv rna`` and its commands."""
    cmds = sub.add_parser("rna", help="RNA secondary structure")
    cmds = cmds.add_subparsers(dest="command", required=True)
    pairs.add_commands(cmds, "rna")
    p = cmds.add_parser("predict", help="predict pair maps")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="[MODEL] INPUT",
        help="the model (a .keras file written by 'symconv rna train', or a preset "
        "name: see 'symconv rna models'; default: the strand16s-scnn preset), then "
        ".fa/.fasta files, or structure files/folders",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    p.add_argument("--no-png", action="store_true", help="skip the heatmaps")
    add_tiling(p)
    p.set_defaults(func=cmd_predict)
    pairs.add_evaluate(cmds, "rna")
    p = cmds.add_parser("models", help="list the shipped trained models (presets)")
    p.add_argument("--verbose", action="store_true", help="also print each description")
    p.set_defaults(func=cmd_models)
