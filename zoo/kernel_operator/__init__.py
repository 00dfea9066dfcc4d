"""Entry ``kernel-operator``: multilevel kernel operator learning (Jin et al., ICLR 2023).

>>> import zoo
>>> model = zoo.load("kernel-operator")  # doctest: +SKIP
>>> x, u = model.apply(lambda x: torch.sin(2 * math.pi * x))  # doctest: +SKIP

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from zoo._lazy import lazy_exports

__all__ = ["KernelOperator", "LinearOperatorDataModule", "OperatorTask", "make_task"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "KernelOperator": "zoo.kernel_operator.model",
        "LinearOperatorDataModule": "zoo.kernel_operator.data",
        "OperatorTask": "zoo.kernel_operator.data",
        "make_task": "zoo.kernel_operator.data",
    },
)
