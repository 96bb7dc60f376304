"""Image algebra on nested Python lists, in the seed's terms (convolve, addBorder, poolMax, ...).

An image is a list of channels, a channel a list of rows, a row a list of floats;
a flat vector is the image ``[[values]]`` (one channel, one row) as in the seed,
where ``type Delta = Image`` so that every layer maps an image to an image.
Pure Python: the inner loops are ``sum(map(mul, ...))`` and comprehensions.
"""

from __future__ import annotations

from operator import mul

Row = list[float]
Plane = list[Row]
Image = list[Plane]
Kernels = list[Image]  # one image (channels x s x s) per output channel
Positions = list[list[list[int]]]  # per pooled pixel: its window's index of the first maximum


def slide_image(s: int, image: Image, rows: int, cols: int) -> list[Row]:
    """The seed's slideImage: each channel shifted by (i, j), cropped to rows x cols, flattened; (c, i, j) order."""
    return [
        [v for line in plane[i : i + rows] for v in line[j : j + cols]]
        for plane in image
        for i in range(s)
        for j in range(s)
    ]


def convolve(kernels: Kernels, biases: Row, image: Image) -> Image:
    """Valid cross-correlation with stride 1: one output channel per kernel, plus its bias."""
    s = len(kernels[0][0])
    rows = len(image[0]) - s + 1
    cols = len(image[0][0]) - s + 1
    # zip turns the slides into the patch under each output pixel, in the kernels'
    # (channel, row, column) order, built once and reused by every kernel.
    patches = list(zip(*slide_image(s, image, rows, cols)))
    out: Image = []
    for kernel, bias in zip(kernels, biases):
        weights = [w for plane in kernel for line in plane for w in line]
        pixels = [bias + sum(map(mul, weights, patch)) for patch in patches]
        out.append([pixels[y * cols : (y + 1) * cols] for y in range(rows)])
    return out


def flip_kernels(kernels: Kernels) -> Kernels:
    """The seed's w': kernels regrouped by input channel and turned by 180 degrees."""
    return [[[line[::-1] for line in kernel[c][::-1]] for kernel in kernels] for c in range(len(kernels[0]))]


def add_border(width: int, image: Image) -> Image:
    """The image with ``width`` zero pixels added on every side (the seed's addBorder)."""
    cols = len(image[0][0]) + 2 * width
    side = [0.0] * width
    # Border rows are shared, never written: every consumer only reads images.
    zeros = [[0.0] * cols] * width
    return [zeros + [side + line + side for line in plane] + zeros for plane in image]


def filter_gradients(image: Image, delta: Image, s: int) -> Kernels:
    """dW[k][c][i][j] = sum over (y, x) of delta[k][y][x] * image[c][y + i][x + j] (the seed's hadamard)."""
    slides = slide_image(s, image, len(delta[0]), len(delta[0][0]))
    area = s * s
    grads: Kernels = []
    for channel in delta:
        d = [v for line in channel for v in line]
        flat = [sum(map(mul, d, shifted)) for shifted in slides]
        grads.append([[flat[c + i * s : c + (i + 1) * s] for i in range(s)] for c in range(0, len(flat), area)])
    return grads


def channel_sums(delta: Image) -> Row:
    """db: the sum of each delta channel."""
    return [sum(map(sum, plane)) for plane in delta]


def pool_max(s: int, image: Image) -> tuple[Image, Positions]:
    """Max over s x s windows, stride s, and where in the window the FIRST maximum sits (row-major)."""
    out: Image = []
    positions: Positions = []
    for plane in image:
        out_plane: Plane = []
        pos_plane: list[list[int]] = []
        for y in range(0, len(plane) - s + 1, s):
            # zip yields each window's pixels in row-major order; max() keeps the
            # first of equal values and index() finds the first, as strict > would.
            windows = list(zip(*(line[j::s] for line in plane[y : y + s] for j in range(s))))
            maxima = list(map(max, windows))
            out_plane.append(maxima)
            pos_plane.append([w.index(m) for w, m in zip(windows, maxima)])
        out.append(out_plane)
        positions.append(pos_plane)
    return out, positions


def depool_max(s: int, positions: Positions, delta: Image) -> Image:
    """Each delta pixel goes to the recorded position in its window; the rest of the window is 0."""
    return [
        [
            [d if p == i * s + j else 0.0 for d, p in zip(drow, prow) for j in range(s)]
            for drow, prow in zip(dplane, pplane)
            for i in range(s)
        ]
        for dplane, pplane in zip(delta, positions)
    ]


def relu(image: Image) -> Image:
    """x if x > 0 else 0.0, pixel by pixel."""
    # A conditional, not max(0.0, v): a call per pixel is three times slower.
    return [[[v if v > 0.0 else 0.0 for v in line] for line in plane] for plane in image]


def relu_delta(inputs: Image, delta: Image) -> Image:
    """The delta where the pre-activation was > 0, else 0.0."""
    return [
        [[d if x > 0.0 else 0.0 for d, x in zip(dl, xl)] for dl, xl in zip(dp, xp)] for dp, xp in zip(delta, inputs)
    ]


def flatten(image: Image) -> Image:
    """All pixels in (channel, row, column) order as the one-row image ``[[values]]``."""
    return [[[v for plane in image for line in plane for v in line]]]


def unflatten(shape_of: Image, delta: Image) -> Image:
    """The flat delta ``[[values]]`` cut back into the channels and rows of ``shape_of``."""
    values = delta[0][0]
    rows, cols = len(shape_of[0]), len(shape_of[0][0])
    size = rows * cols
    return [
        [values[c * size + y * cols : c * size + (y + 1) * cols] for y in range(rows)] for c in range(len(shape_of))
    ]


def affine(weights: list[Row], biases: Row, x: Row) -> Row:
    """W @ x + b for W as a list of rows."""
    return [b + sum(map(mul, row, x)) for row, b in zip(weights, biases)]


def transposed_product(weights: list[Row], d: Row) -> Row:
    """W^T @ d: the delta a fully connected layer passes up."""
    return [sum(map(mul, column, d)) for column in zip(*weights)]


def outer(d: Row, x: Row) -> list[Row]:
    """d x^T: a fully connected layer's weight gradient."""
    return [[di * v for v in x] for di in d]
