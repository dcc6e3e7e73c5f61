import os
import sys

# The tests import their shared helpers (tolerances, oracles, corpus) by plain name.
sys.path.insert(0, os.path.dirname(__file__))
# Verify the IR after every optimization pass while testing.
os.environ.setdefault("SXAD_VERIFY", "1")
