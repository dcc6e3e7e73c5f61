"""The array corpus: numpy functions in the supported subset, each with example arguments.

Every case is checked (tests/arrays/test_array_corpus.py) by lowering it from source and
comparing with the function itself, then its derivatives against central differences along
random directions, forward against reverse (the dot-product test), interpreter against
generated Python and native code, in float64 and float32.

Arguments are built by ``args(rng)`` so shapes are explicit; float arguments are the ones
differentiated. Keep the example points smooth (no ties at max/abs kinks, positive logs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# --------------------------------------------------------------------------- elementwise


def affine(x, w, b):
    return np.sum(w * x + b)


def broadcast_row(x, r):
    return np.sum(np.sin(x + r) * x)               # (3, 4) + (4,)


def broadcast_column(x, c):
    return np.sum(np.exp(x * c) / (1.0 + c))       # (3, 4) * (3, 1)


def broadcast_scalar(x, s):
    return np.sum(np.tanh(s * x - s ** 2))


def broadcast_outer_shape(u, v):
    return np.sum(np.cos(u[:, None] * v) + np.cos(np.outer(v, u)).T)


def elementwise_chain(x):
    return np.sum(np.log1p(np.exp(-x)) + np.sqrt(1.0 + x * x) - np.arctan(x))


def sigmoid_sum(x):
    return np.sum(1.0 / (1.0 + np.exp(-x)))


def where_relu(x):
    return np.sum(np.where(x > 0.0, x, 0.1 * x) ** 2)


def maximum_minimum(x, y):
    return np.sum(np.maximum(x, y) - 0.5 * np.minimum(x, 0.3 * y))


def clip_smooth(x):
    return np.sum(np.clip(x, -0.75, 0.75) * x)


def abs_sign(x):
    return np.sum(np.abs(x) * np.sign(x + 0.05) * x)


def power_and_division(x, y):
    return np.sum(x ** 3 / (y * y + 1.0) - x ** 0.5)


def array_result(x, y):
    return np.exp(x) * y - x                        # a whole array out


def two_results(x):
    return np.sin(x), np.sum(x * x)


def hypot_atan2(x, y):
    return np.sum(np.hypot(x, y) + np.arctan2(y, x))


# --------------------------------------------------------------------------- reductions


def sum_axis0(x):
    return np.sum(np.sum(x, axis=0) ** 2)


def sum_axis1_keepdims(x):
    return np.sum((x - np.sum(x, axis=1, keepdims=True)) ** 2)


def sum_negative_axis(x):
    return np.sum(np.sin(x.sum(axis=-1)))


def sum_tuple_axes(x):
    return np.sum(np.exp(np.sum(x, axis=(0, 2))))


def mean_methods(x):
    return x.mean() * x.mean(axis=0).sum()


def max_reduce(x):
    return np.max(x) + np.sum(np.max(x, axis=1))


def min_keepdims(x):
    return np.sum(x - x.min(axis=0, keepdims=True))


def prod_reduce(x):
    return np.prod(x) + np.sum(np.prod(x, axis=1))


def variance(x):
    mu = np.mean(x, axis=0)
    return np.sum(np.mean((x - mu) ** 2, axis=0))


def norm2(x):
    return np.sqrt(np.sum(x * x))


# --------------------------------------------------------------------------- softmax family


def logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def logsumexp_rows(x):
    m = np.max(x, axis=1, keepdims=True)
    return np.sum(m[:, 0] + np.log(np.sum(np.exp(x - m), axis=1)))


def softmax_weighted(x, w):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    p = e / np.sum(e, axis=-1, keepdims=True)
    return np.sum(p * w)


def logaddexp_sum(x, y):
    return np.sum(np.logaddexp(x, y))


def softmax_cross_entropy(z, labels):
    n = z.shape[0]
    shifted = z - np.max(z, axis=1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.sum(log_p[np.arange(n), labels]) / n


def gaussian_mixture(x, mu, log_sigma, logits):
    """Log-likelihood of points x (n,) under a 1-d mixture of k Gaussians."""
    sigma = np.exp(log_sigma)
    z = (x[:, None] - mu) / sigma
    log_w = logits - np.log(np.sum(np.exp(logits)))
    comp = log_w - 0.5 * z * z - log_sigma - 0.5 * np.log(2.0 * np.pi)
    m = np.max(comp, axis=1, keepdims=True)
    return np.sum(m[:, 0] + np.log(np.sum(np.exp(comp - m), axis=1)))


# --------------------------------------------------------------------------- linear algebra


def dot_vectors(u, v):
    return np.dot(u, v) * np.sin(u @ v)


def matvec(A, x):
    return np.sum(np.tanh(A @ x))


def vecmat(x, A):
    return np.sum((x @ A) ** 2)


def matmat(A, B):
    return np.sum(np.sin(A @ B))


def matmul_transposes(A, B):
    return np.sum(np.matmul(A.T, B) * 0.5 + np.transpose(B) @ A)


def quadratic_form(A, x):
    return x @ (A @ x)


def outer_product(u, v):
    return np.sum(np.outer(u, v) ** 2)


def dense_layer(x, W, b):
    return np.sum(np.tanh(x @ W.T + b))


def two_layer_mlp(x, W1, b1, W2, b2):
    h = 1.0 / (1.0 + np.exp(-(x @ W1.T + b1)))
    out = h @ W2.T + b2
    return 0.5 * np.sum(out * out) / x.shape[0]


def gram_trace(A):
    G = A.T @ A
    return np.sum(G * G)


# --------------------------------------------------------------------------- shapes, creation


def reshape_flat(x):
    return np.sum(x.reshape(-1) * np.arange(x.size))


def reshape_back(x):
    return np.sum(np.reshape(x, (x.shape[1], x.shape[0])) ** 2)


def transpose_3d(x):
    return np.sum(np.transpose(x, (2, 0, 1)) * np.arange(3.0))


def zeros_ones(x):
    acc = np.zeros(x.shape[0]) + np.ones_like(x) * 2.0
    return np.sum(acc * x)


def full_like_shapes(x):
    return np.sum(np.full((x.shape[0],), 0.5) * x + np.zeros_like(x))


def shape_len_ndim(x):
    return np.sum(x) * (len(x) + x.ndim + x.shape[1])


def astype_widen(x):
    """f32 → f64 is exact, so differences see no rounding; an f64 x passes through."""
    return np.sum(x.astype(np.float64) * np.sin(x))


# --------------------------------------------------------------------------- indexing


def index_elements(x):
    return x[0] * x[2] + x[-1] ** 2


def index_2d(x):
    return x[1, 2] * x[0, 0] + np.sum(x[1, :] * x[:, 2].sum())


def slices_with_steps(x):
    return np.sum(x[1:5:2] * x[::2][:2]) + np.sum(x[::-1] * x)


def rows_and_columns(x):
    return np.sum(x[:, 1] ** 2) + np.sum(np.exp(x[1:, :2]))


def gather_labels(p, labels):
    return np.sum(np.log(p[np.arange(p.shape[0]), labels]))


# --------------------------------------------------------------------------- loops over elements


def dot_loop(w, x):
    s = 0.0
    for i in range(len(x)):
        s += w[i] * x[i]
    return s


def running_product(x):
    p = 1.0
    for i in range(x.shape[0]):
        p = p * (1.0 + 0.1 * x[i])
    return p


def loop_matrix_rows(A, v):
    total = 0.0
    for i in range(A.shape[0]):
        total += np.sin(np.sum(A[i, :] * v))
    return total


def while_halving(x):
    y = x
    while np.sum(y * y) > 1.0:
        y = 0.5 * y
    return np.sum(np.exp(y))


def branch_on_norm(x):
    if np.sum(x) > 0.0:
        return np.sum(x * x)
    return np.sum(np.sin(x))


# --------------------------------------------------------------------------- mutation


def set_elements_in_loop(x):
    y = np.zeros_like(x)
    for i in range(x.shape[0]):
        y[i] = x[i] * x[i] + (y[i - 1] if i > 0 else 0.0)
    return np.sum(y * x)


def augmented_element(x):
    y = x * 1.0
    for i in range(1, x.shape[0]):
        y[i] += np.sin(y[i - 1])
    return np.sum(y)


def overwrite_reuse(x):
    y = np.exp(x)
    a = np.sum(y * y)
    y[0] = 3.0 * x[1]
    return a + np.sum(y * x)


def column_assignment(x):
    y = np.zeros_like(x)
    y[:, 0] = np.sin(x[:, 1])
    y[:, 1] = x[:, 0] * x[:, 1]
    return np.sum(y * y)


def recurrence(h0, W, xs):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[t])
    return np.sum(h)


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class ArrayCase:
    fn: Callable
    args: Callable[[np.random.Generator], tuple]
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.fn.__name__


def _n(rng, *shape):
    return rng.normal(size=shape)


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _labels(rng, n, k):
    return rng.integers(0, k, size=n)


def _probs(rng, n, k):
    p = rng.uniform(0.1, 1.0, size=(n, k))
    return p / p.sum(axis=1, keepdims=True)


CASES = [
    ArrayCase(affine, lambda r: (_n(r, 5), _n(r, 5), _n(r, 5))),
    ArrayCase(broadcast_row, lambda r: (_n(r, 3, 4), _n(r, 4))),
    ArrayCase(broadcast_column, lambda r: (_n(r, 3, 4), _pos(r, 3, 1))),
    ArrayCase(broadcast_scalar, lambda r: (_n(r, 3, 4), 0.7)),
    ArrayCase(broadcast_outer_shape, lambda r: (_n(r, 3), _n(r, 4))),
    ArrayCase(elementwise_chain, lambda r: (_n(r, 7),)),
    ArrayCase(sigmoid_sum, lambda r: (_n(r, 2, 3),)),
    ArrayCase(where_relu, lambda r: (_n(r, 9),)),
    ArrayCase(maximum_minimum, lambda r: (_n(r, 6), _n(r, 6))),
    ArrayCase(clip_smooth, lambda r: (r.uniform(-2, 2, 8),)),
    ArrayCase(abs_sign, lambda r: (_n(r, 6) + 0.3,)),
    ArrayCase(power_and_division, lambda r: (_pos(r, 5), _n(r, 5))),
    ArrayCase(array_result, lambda r: (_n(r, 2, 3), _n(r, 2, 3))),
    ArrayCase(two_results, lambda r: (_n(r, 4),)),
    ArrayCase(hypot_atan2, lambda r: (_pos(r, 5), _pos(r, 5))),
    ArrayCase(sum_axis0, lambda r: (_n(r, 3, 4),)),
    ArrayCase(sum_axis1_keepdims, lambda r: (_n(r, 3, 4),)),
    ArrayCase(sum_negative_axis, lambda r: (_n(r, 3, 4),)),
    ArrayCase(sum_tuple_axes, lambda r: (0.3 * _n(r, 2, 3, 4),)),
    ArrayCase(mean_methods, lambda r: (_n(r, 3, 4),)),
    ArrayCase(max_reduce, lambda r: (_n(r, 3, 4),)),
    ArrayCase(min_keepdims, lambda r: (_n(r, 3, 4),)),
    ArrayCase(prod_reduce, lambda r: (_pos(r, 3, 3),)),
    ArrayCase(variance, lambda r: (_n(r, 5, 2),)),
    ArrayCase(norm2, lambda r: (_n(r, 6),)),
    ArrayCase(logsumexp, lambda r: (_n(r, 7),)),
    ArrayCase(logsumexp_rows, lambda r: (_n(r, 4, 5),)),
    ArrayCase(softmax_weighted, lambda r: (_n(r, 3, 5), _n(r, 3, 5))),
    ArrayCase(logaddexp_sum, lambda r: (_n(r, 6), _n(r, 6))),
    ArrayCase(softmax_cross_entropy, lambda r: (_n(r, 6, 4), _labels(r, 6, 4))),
    ArrayCase(gaussian_mixture, lambda r: (_n(r, 8), _n(r, 3), 0.3 * _n(r, 3), _n(r, 3))),
    ArrayCase(dot_vectors, lambda r: (_n(r, 5), _n(r, 5))),
    ArrayCase(matvec, lambda r: (_n(r, 3, 4), _n(r, 4))),
    ArrayCase(vecmat, lambda r: (_n(r, 3), _n(r, 3, 4))),
    ArrayCase(matmat, lambda r: (_n(r, 3, 4), _n(r, 4, 2))),
    ArrayCase(matmul_transposes, lambda r: (_n(r, 4, 3), _n(r, 4, 3))),
    ArrayCase(quadratic_form, lambda r: (_n(r, 4, 4), _n(r, 4))),
    ArrayCase(outer_product, lambda r: (_n(r, 3), _n(r, 4))),
    ArrayCase(dense_layer, lambda r: (_n(r, 5, 3), _n(r, 4, 3), _n(r, 4))),
    ArrayCase(two_layer_mlp, lambda r: (_n(r, 6, 3), _n(r, 5, 3), _n(r, 5), _n(r, 2, 5),
                                        _n(r, 2))),
    ArrayCase(gram_trace, lambda r: (_n(r, 4, 3),)),
    ArrayCase(reshape_flat, lambda r: (_n(r, 3, 4),)),
    ArrayCase(reshape_back, lambda r: (_n(r, 2, 3),)),
    ArrayCase(transpose_3d, lambda r: (_n(r, 2, 3, 4),)),
    ArrayCase(zeros_ones, lambda r: (_n(r, 3, 3),)),
    ArrayCase(full_like_shapes, lambda r: (_n(r, 5),)),
    ArrayCase(shape_len_ndim, lambda r: (_n(r, 3, 2),)),
    ArrayCase(astype_widen, lambda r: (_n(r, 5),)),
    ArrayCase(index_elements, lambda r: (_n(r, 5),)),
    ArrayCase(index_2d, lambda r: (_n(r, 3, 4),)),
    ArrayCase(slices_with_steps, lambda r: (_n(r, 8),)),
    ArrayCase(rows_and_columns, lambda r: (_n(r, 3, 4),)),
    ArrayCase(gather_labels, lambda r: (_probs(r, 5, 3), _labels(r, 5, 3))),
    ArrayCase(dot_loop, lambda r: (_n(r, 6), _n(r, 6))),
    ArrayCase(running_product, lambda r: (_n(r, 7),)),
    ArrayCase(loop_matrix_rows, lambda r: (_n(r, 4, 3), _n(r, 3))),
    ArrayCase(while_halving, lambda r: (3.0 * _n(r, 4),)),
    ArrayCase(branch_on_norm, lambda r: (_n(r, 5) + 0.2,)),
    ArrayCase(set_elements_in_loop, lambda r: (_n(r, 5),)),
    ArrayCase(augmented_element, lambda r: (_n(r, 5),)),
    ArrayCase(overwrite_reuse, lambda r: (_n(r, 4),)),
    ArrayCase(column_assignment, lambda r: (_n(r, 3, 2),)),
    ArrayCase(recurrence, lambda r: (_n(r, 3), 0.5 * _n(r, 3, 3), _n(r, 4, 3))),
]
