"""Train an MLP on scikit-learn's handwritten digits with one compiled kernel per training step.

    python examples/mlp_digits.py                      # 64-128-10, sigmoid, softmax CE, MBSGD
    python examples/mlp_digits.py --hidden 64 32 --activation relu --optimizer adam --lr 0.01
    python examples/mlp_digits.py --help

The training step below is ordinary Python: the forward pass and the loss from ``sxad.nn``,
the gradients from ``sxad.value_and_grad``, the update written in place. ``sxad.jit`` compiles
all of it — forward, backward, update — into one native kernel; nothing here is a hand-written
derivative. The data: 1797 8×8 images that ship with scikit-learn (no download), split 80/20.
Writes the loss and accuracy curves to a PNG (``--plot``) and prints the test accuracy and the
time per step.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import sxad
from sxad import nn

ACTIVATIONS = {"sigmoid": nn.sigmoid, "tanh": nn.tanh, "relu": nn.relu,
               "leaky_relu": nn.leaky_relu, "identity": nn.identity}
LOSSES = ("softmax_ce", "mse")
OPTIMIZERS = ("sgd", "momentum", "adam")
DEFAULT_LR = {"sgd": 1.0, "momentum": 0.1, "adam": 0.003}


def make_step(layers: int, activation: str = "sigmoid", loss: str = "softmax_ce",
              optimizer: str = "sgd"):
    """The compiled training step ``step(params, state, x, y, lr) -> loss`` for an MLP of
    ``layers`` dense layers. ``params`` = (W1, b1, …) and the optimizer's ``state`` (a tuple of
    arrays, empty for plain SGD) are updated in place; ``y`` holds integer labels."""
    act = ACTIVATIONS[activation]

    def objective(params, x, y):
        logits = nn.mlp_forward(params, x, act)
        if loss == "mse":  # the seed's eq. 3.52 against one-hot targets
            return nn.mse(nn.one_hot_like(logits, y), logits)
        return nn.softmax_cross_entropy(logits, y)

    value_and_grad = sxad.value_and_grad(objective)

    @sxad.jit
    def sgd(params, state, x, y, lr):
        value, grads = value_and_grad(params, x, y)
        for p, g in zip(params, grads):
            p -= lr * g
        return value

    @sxad.jit
    def momentum(params, state, x, y, lr):
        value, grads = value_and_grad(params, x, y)
        for p, v, g in zip(params, state, grads):
            v *= 0.9
            v -= lr * g
            p += v
        return value

    @sxad.jit
    def adam(params, state, x, y, lr):
        value, grads = value_and_grad(params, x, y)
        t = state[0]
        t += 1.0
        ms, vs = state[1:1 + len(params)], state[1 + len(params):]
        for p, m, v, g in zip(params, ms, vs, grads):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= lr * (m / (1.0 - 0.9 ** t)) / (np.sqrt(v / (1.0 - 0.999 ** t)) + 1e-8)
        return value

    del layers  # one compiled function serves every depth: params is a tuple of known length
    return {"sgd": sgd, "momentum": momentum, "adam": adam}[optimizer]


def optimizer_state(optimizer: str, params: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Zeros for the optimizer's moving averages (Adam also counts steps in a 0-d array)."""
    zeros = tuple(np.zeros_like(p) for p in params)
    if optimizer == "momentum":
        return zeros
    if optimizer == "adam":
        return (np.zeros((), params[0].dtype),) + zeros + tuple(np.zeros_like(p) for p in params)
    return ()


def load_data(seed: int, dtype=np.float32):
    """The digits, scaled to [0, 1], split 80/20 with every class in both parts."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(dtype)
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.2,
                            random_state=seed, stratify=digits.target)


def accuracy(params, x: np.ndarray, y: np.ndarray, activation: str) -> float:
    logits = nn.mlp_forward(params, x, ACTIVATIONS[activation])
    return float(np.mean(np.argmax(logits, axis=1) == y))


def progress(epoch: int, epochs: int, loss: float, acc: float, width: int = 30) -> None:
    done = (epoch + 1) * width // epochs
    bar = "█" * done + "·" * (width - done)
    print(f"\r{bar} epoch {epoch + 1:3d}/{epochs}  loss {loss:.4f}  test acc {acc:6.2%}",
          end="" if epoch + 1 < epochs else "\n", file=sys.stderr, flush=True)


def plot(path: str, losses: list[float], accs: list[float]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = np.arange(1, len(losses) + 1)
    left.plot(epochs, losses)
    left.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    right.plot(epochs, np.array(accs) * 100)
    right.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128], help="hidden sizes")
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="sigmoid")
    parser.add_argument("--loss", choices=LOSSES, default="softmax_ce")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    parser.add_argument("--variant", choices=nn.VARIANTS, default="mbsgd",
                        help="full-batch GD, SGD or mini-batch SGD (seed §3.7)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: 0.5 for sgd/momentum, 0.003 for adam)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="mlp_digits.png", help="PNG of the curves ('' for none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Train as ``args`` say; returns the test accuracy, the curves and the time per step."""
    x_train, x_test, y_train, y_test = load_data(args.seed)
    rng = np.random.default_rng(args.seed)
    init = nn.he_normal if args.activation in ("relu", "leaky_relu") else nn.glorot_uniform
    params = nn.init_mlp(rng, [x_train.shape[1], *args.hidden, 10], init, np.float32)
    state = optimizer_state(args.optimizer, params)
    lr = np.float32(args.lr if args.lr is not None else DEFAULT_LR[args.optimizer])
    step = make_step(len(params) // 2, args.activation, args.loss, args.optimizer)
    accs: list[float] = []
    steps, step_time = 0, 0.0

    def timed_step(params, xb, yb):
        nonlocal steps, step_time
        start = time.perf_counter()
        value = step(params, state, xb, yb, lr)
        step_time += time.perf_counter() - start
        steps += 1
        return value

    def on_epoch(epoch: int, loss: float) -> None:
        accs.append(accuracy(params, x_test, y_test, args.activation))
        if not args.quiet:
            progress(epoch, args.epochs, loss, accs[-1])

    losses = nn.train(timed_step, params, (x_train, y_train), args.variant, args.batch_size,
                      args.epochs, rng, on_epoch)
    if args.plot:
        plot(args.plot, losses, accs)
    return {"accuracy": accs[-1], "losses": losses, "accuracies": accs,
            "ms_per_step": step_time / steps * 1e3, "steps": steps}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    result = run(args)
    print(f"test accuracy {result['accuracy']:.2%} after {args.epochs} epochs; "
          f"{result['ms_per_step']:.3f} ms per step ({result['steps']} steps, "
          f"first call's compile included); {time.perf_counter() - start:.1f} s in all")
    if args.plot:
        print(f"curves: {args.plot}")


if __name__ == "__main__":
    main()
