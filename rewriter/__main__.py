"""python -m onnx_sparsify: the onnx-sparsify command."""

import sys

from .cli import main

sys.exit(main())
