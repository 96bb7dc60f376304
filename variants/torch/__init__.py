"""The ``torch`` variant (optional: ``pip install '.[torch]'``): ``torch.nn`` in float64.

The folder is named after the registered variant; inside, ``import torch`` is the real
PyTorch (absolute imports), never this package.
"""

from variants.torch.model import TorchCNN

__all__ = ["TorchCNN"]
