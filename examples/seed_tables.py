"""The seed chapter's Tables 3.1 and 3.2, and the trace of Example 3.1's network, by sxad.trace.

Run:  python examples/seed_tables.py          (add --markdown for Markdown tables)
"""
import sys

import numpy as np

import sxad


def f(x1, x2):
    """The seed's y = f(x1, x2) = ln(x1) + x1·x2 − sin(x2)."""
    return np.log(x1) + x1 * x2 - np.sin(x2)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def loss(w11_1, w12_1, w10_1, w21_1, w22_1, w20_1, w11_2, w12_2, w10_2, a1_0, a2_0, y):
    """Example 3.1: two inputs, two sigmoid hidden units, an identity output, squared error.
    ``w11_1`` is the seed's w₁₁⁽¹⁾ (the layer after the underscore); ``a1_0`` is a₁⁽⁰⁾."""
    z1_1 = w11_1 * a1_0 + w12_1 * a2_0 + w10_1
    a1_1 = sigmoid(z1_1)
    z2_1 = w21_1 * a1_0 + w22_1 * a2_0 + w20_1
    a2_1 = sigmoid(z2_1)
    a1_2 = w11_2 * a1_1 + w12_2 * a2_1 + w10_2  # identity activation at the output
    return 0.5 * (y - a1_2) ** 2


# One training example: weights and biases θ, the input a⁽⁰⁾ and its label y.
THETA = dict(w11_1=0.15, w12_1=0.2, w10_1=0.35, w21_1=0.25, w22_1=0.3, w20_1=0.35,
             w11_2=0.4, w12_2=0.45, w10_2=0.6)
EXAMPLE = dict(a1_0=0.05, a2_0=0.1, y=0.01)


def seed_formulas() -> dict[str, float]:
    """∂L/∂w by the seed's closed forms (Example 3.1's solution), to compare with the trace."""
    t, e = THETA, EXAMPLE
    a1 = sigmoid(t["w11_1"] * e["a1_0"] + t["w12_1"] * e["a2_0"] + t["w10_1"])
    a2 = sigmoid(t["w21_1"] * e["a1_0"] + t["w22_1"] * e["a2_0"] + t["w20_1"])
    error = t["w11_2"] * a1 + t["w12_2"] * a2 + t["w10_2"] - e["y"]  # a₁⁽²⁾ − y
    return {"w11_2": error * a1, "w12_2": error * a2, "w10_2": error,
            "w11_1": error * t["w11_2"] * (1 - a1) * a1 * e["a1_0"],
            "w22_1": error * t["w12_2"] * (1 - a2) * a2 * e["a2_0"]}


def main(markdown: bool = False) -> None:
    show = (lambda t: print(t.to_markdown())) if markdown else print
    print("Table 3.1: forward mode, the derivative with respect to x₁\n")
    show(sxad.trace(f, 2.0, 5.0, wrt="x1", mode="forward"))
    print("\nTable 3.2: reverse mode, both derivatives in one sweep\n")
    show(sxad.trace(f, 2.0, 5.0, wrt=("x1", "x2"), mode="reverse"))
    print("\nExample 3.1: the network's loss, back-propagated (reverse mode, your names)\n")
    args = {**THETA, **EXAMPLE}
    network = sxad.trace(loss, *args.values(), wrt=tuple(THETA), mode="reverse",
                         names="user")
    show(network)
    print("\nThe seed's closed forms against the trace:")
    traced = dict(zip(THETA, (value for _, value in network.derivatives)))
    for name, value in seed_formulas().items():
        print(f"  ∂L/∂{name}: seed {value:.9f}, trace {traced[name]:.9f}")


if __name__ == "__main__":
    main(markdown="--markdown" in sys.argv[1:])
