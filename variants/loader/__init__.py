"""The ``loader`` variant: the numpy variant's CNN fed by N forked data-loader worker processes.

:mod:`~variants.loader.model` trains; :mod:`~variants.loader.workers` forks and
feeds from the workers; :mod:`~variants.loader.dataset` draws the K training
images and holds them as the workers read them; :mod:`~variants.loader.options`
checks ``--option workers=N samples=K timeout=S``.
"""

from variants.loader.model import LoaderCNN

__all__ = ["LoaderCNN"]
