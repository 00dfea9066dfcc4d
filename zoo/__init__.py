"""zoo: a PyTorch Lightning model zoo of ICLR 2023 papers for machine learning in the sciences.

>>> import zoo
>>> isinstance(zoo.list_models(), list)
True

``import zoo`` is light: the registry is plain data, and :func:`load` imports torch,
safetensors and ``huggingface_hub`` only when called. The entries' sub-packages import their
own libraries when used.
"""

from zoo.hub import load
from zoo.registry import info, list_models

__all__ = ["__version__", "info", "list_models", "load"]

__version__ = "0.1.0"
