"""The seed chapter's worked example (Tables 3.1 and 3.2), through sxad.

Run:  python examples/seed_chapter.py
"""
import numpy as np

import sxad


def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def main() -> None:
    value, (x1_bar, x2_bar) = sxad.value_and_grad(f, wrt=(0, 1))(2.0, 5.0)
    print(f"Table 3.2 (reverse mode): y = {value:.3f}, x1_bar = {x1_bar:.3f}, x2_bar = {x2_bar:.3f}")
    y, y_dot = sxad.jvp(f, (2.0, 5.0), (1.0, 0.0))
    print(f"Table 3.1 (forward mode): y = {y:.3f}, y_dot = {y_dot:.3f}")
    print(f"Hessian at (2, 5): {sxad.hessian(f, wrt=(0, 1))(2.0, 5.0)}")
    print("\nThe adjoint program sxad generated for f:\n")
    print(sxad.source(f, 2.0, 5.0, wrt=(0, 1)))
    print("The adjoint of the sigmoid reuses sigma (the seed's sigma' = sigma (1 - sigma)):\n")
    print(sxad.source(sigmoid, 0.5))


if __name__ == "__main__":
    main()
