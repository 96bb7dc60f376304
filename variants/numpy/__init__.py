"""The ``numpy`` variant: every buffer allocated once, im2col GEMMs and in-place updates.

:mod:`~variants.numpy.model` trains; :mod:`~variants.numpy.net` is one batch's network
over :mod:`~variants.numpy.conv` and :mod:`~variants.numpy.layers`, in the arena of :mod:`~variants.numpy.memory`, with
the flat parameter vectors of :mod:`~variants.numpy.params`.
"""

from variants.numpy.model import BuffersCNN

__all__ = ["BuffersCNN"]
