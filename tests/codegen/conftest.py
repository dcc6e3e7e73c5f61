import atexit
import os
import shutil
import sys
import tempfile

# The codegen tests import their shared programs by plain name.
sys.path.insert(0, os.path.dirname(__file__))

# Compile into a cache of this test session only: the user's cache stays untouched, and every
# session starts cold, so the compile path is exercised too.
_CACHE = tempfile.mkdtemp(prefix="sxad-test-cache-")
os.environ["SXAD_CACHE_DIR"] = _CACHE
os.environ.pop("SXAD_CACHE", None)
atexit.register(shutil.rmtree, _CACHE, True)


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)
