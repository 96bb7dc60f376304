"""The ``lists`` variant: the seed's design ported to Python, nested lists and recursion, pure Python.

:mod:`~variants.lists.model` trains; :mod:`~variants.lists.layers` are the layers,
:mod:`~variants.lists.params` builds and updates them, :mod:`~variants.lists.algebra`
is the list algebra they are written in.
"""

from variants.lists.model import ListsCNN

__all__ = ["ListsCNN"]
