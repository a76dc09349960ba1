"""``python -m keras_symconv``: the ``symconv`` command-line tool."""

import sys

from keras_symconv.cli import main

sys.exit(main())
