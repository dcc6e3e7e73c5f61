"""Backends that need no native compiler: the IR interpreter and the Python source printer."""
