"""The ``generators`` variant: samples stream through the layers as lazy generator pipelines, pure Python.

:mod:`~variants.generators.model` trains; :mod:`~variants.generators.layers` are the
layers; :mod:`~variants.generators.lazy` holds the memoised thunks of the ``thunks`` leak.
"""

from variants.generators.model import GeneratorsCNN

__all__ = ["GeneratorsCNN"]
