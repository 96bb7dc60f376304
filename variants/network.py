"""The seed's network: layer sizes and the canonical parameter names and shapes.

Every variant stores its parameters in its own style but converts to and from
this canonical form (NumPy float64 arrays, PyTorch layouts) so that variants
can be compared number for number.
"""

from __future__ import annotations

IMAGE_SIZE = 12  # input images are 1 x 12 x 12
CLASSES = 3

CONV1_KERNELS, CONV1_SIZE = 10, 3  # 1x12x12 -> 10x10x10 -> pool -> 10x5x5
CONV2_KERNELS, CONV2_SIZE = 20, 2  # 10x5x5 -> 20x4x4 -> pool -> 20x2x2
POOL = 2
FLAT = CONV2_KERNELS * 2 * 2  # 80
HIDDEN = 20

# name -> shape; weights are (out, in[, kh, kw]) as in torch.nn, flatten order is (channel, row, column).
PARAMETER_SHAPES: dict[str, tuple[int, ...]] = {
    "conv1.weight": (CONV1_KERNELS, 1, CONV1_SIZE, CONV1_SIZE),
    "conv1.bias": (CONV1_KERNELS,),
    "conv2.weight": (CONV2_KERNELS, CONV1_KERNELS, CONV2_SIZE, CONV2_SIZE),
    "conv2.bias": (CONV2_KERNELS,),
    "fc1.weight": (HIDDEN, FLAT),
    "fc1.bias": (HIDDEN,),
    "fc2.weight": (CLASSES, HIDDEN),
    "fc2.bias": (CLASSES,),
}

CONV_PARAMETERS = ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias")
FC_PARAMETERS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def learning_parameters(fc_only: bool) -> tuple[str, ...]:
    """The parameters that are updated: all, or only the fully connected ones (seed's 2nd column)."""
    return FC_PARAMETERS if fc_only else CONV_PARAMETERS + FC_PARAMETERS
