"""sxad: source-transformation automatic differentiation for Python."""
