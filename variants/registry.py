"""The one list of built-in variants; the CLI, the tests and the reports read it.

Entries are import paths so that listing the variants imports nothing heavy and
an optional variant (``torch``) only fails when it is actually chosen.
"""

from __future__ import annotations

VARIANTS: dict[str, str] = {
    "lists": "variants.lists:ListsCNN",
    "generators": "variants.generators:GeneratorsCNN",
    "numpy": "variants.buffers:BuffersCNN",
    # Optional: needs `pip install .[torch]`; everything else works without it.
    "torch": "variants.torch_net:TorchCNN",
}
