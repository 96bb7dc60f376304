"""The one list of built-in variants; the CLI, the tests and the reports read it.

Entries are import paths so that listing the variants imports nothing heavy and
an optional variant (``torch``, ``numba``) only fails when it is actually chosen.
"""

from __future__ import annotations

VARIANTS: dict[str, str] = {
    "lists": "variants.lists:ListsCNN",
    "generators": "variants.generators:GeneratorsCNN",
    "numpy": "variants.buffers:BuffersCNN",
    # Optional: each needs its extra (`pip install '.[numba]'`); everything else works without them.
    "numba": "variants.fused:NumbaCNN",
    "torch": "variants.torch_net:TorchCNN",
}

# Optional variant -> the module it needs, which is also the name of its extra in pyproject.toml.
OPTIONAL: dict[str, str] = {"torch": "torch", "numba": "numba"}
