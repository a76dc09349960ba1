"""The ``symconv`` command-line tool (also ``python -m keras_symconv``).

    symconv rna train    (--data PATH... | --synthetic N) --model scnn|cnn|cnn-sym --out DIR
    symconv rna compare  (--data PATH... | --synthetic N) --out DIR
    symconv rna predict  [MODEL] INPUT... --out DIR   (MODEL: a .keras file or a preset)
    symconv rna evaluate MODEL DATA...
    symconv rna models                                (the shipped presets)
    symconv contact train|compare|predict|evaluate ... (the same, for proteins)
    symconv rec train    (--data FILE... | --train F --test F) --model scosrec|cosrec --out DIR
    symconv rec evaluate MODEL [data options]    (sequential recommendation)

``symconv <rna|contact|rec> <command> --help`` lists every option.
"""

from __future__ import annotations

import argparse
import os
import sys

# Before TensorFlow is first imported (lazily, by the commands).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_symconv._backend import BackendError  # noqa: E402
from keras_symconv.cli import contact, rec, rna  # noqa: E402

__all__ = ["main", "build_parser"]


def build_parser():
    """The ``symconv`` argument parser: one sub-command group per application."""
    parser = argparse.ArgumentParser(prog="symconv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="domain", required=True)
    rna.add_parser(sub)
    contact.add_parser(sub)
    rec.add_parser(sub)
    return parser


def main(argv=None):
    """Run ``symconv``; bad input, a missing file or a wrong backend: a message, exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, BackendError) as exc:
        print(f"symconv: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
