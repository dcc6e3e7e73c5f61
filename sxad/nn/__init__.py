"""sxad.nn: small neural-network building blocks written as ordinary numpy code.

Everything a training step runs (activations, losses, ``mlp_forward``, the optimizer updates)
stays inside the numpy subset sxad compiles (docs/ARRAYS.md), so a step written with these
functions runs as plain Python today and becomes one compiled kernel under sxad. The
initialisers and the training loop drive a run from plain Python and are not compiled.
Each function is a few lines meant to be read and copied.

Conventions: a batch holds its data points as rows; ``W`` of a layer has the seed's shape
(units out, units in); losses average over the data points of a batch (see ``losses``).
"""
from .activations import (identity, leaky_relu, log_softmax, relu, sigmoid, softmax, softplus,
                          tanh)
from .initializers import glorot_uniform, he_normal, init_mlp
from .layers import dense, mlp_forward
from .losses import (binary_cross_entropy, log_loss, mse, one_hot_like, sigmoid_cross_entropy,
                     softmax_cross_entropy, squared_error)
from .optimizers import adam_update, sgd_momentum_update, sgd_update
from .training import VARIANTS, batches, train

__all__ = [
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax", "log_softmax",
    "squared_error", "mse", "log_loss", "binary_cross_entropy", "sigmoid_cross_entropy",
    "softmax_cross_entropy", "one_hot_like",
    "dense", "mlp_forward",
    "glorot_uniform", "he_normal", "init_mlp",
    "sgd_update", "sgd_momentum_update", "adam_update",
    "VARIANTS", "batches", "train",
]
