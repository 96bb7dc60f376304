"""The ``numba`` variant (optional: ``pip install '.[numba]'``): the ``numpy`` variant with its
pooling, col2im and update compiled by numba.

:mod:`~variants.numba.model` swaps the compiled layers in; :mod:`~variants.numba.kernels`
holds the kernels.
"""

from variants.numba.model import NumbaCNN

__all__ = ["NumbaCNN"]
