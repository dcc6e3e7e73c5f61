import atexit
import os
import shutil
import sys
import tempfile

# The tests import their shared helpers (tolerances, oracles, corpus) by plain name.
sys.path.insert(0, os.path.dirname(__file__))
# Verify the IR after every optimization pass while testing.
os.environ.setdefault("SXAD_VERIFY", "1")
# Parallel loops never back off to serial under load (tests count the pool's jobs).
os.environ.setdefault("SXAD_POOL_ADAPTIVE", "0")

# Every test session uses a cache directory of its own: the user's cache stays untouched, and
# the compile paths run cold.
_CACHE = tempfile.mkdtemp(prefix="sxad-test-cache-")
os.environ["SXAD_CACHE_DIR"] = _CACHE
os.environ.pop("SXAD_CACHE", None)
atexit.register(shutil.rmtree, _CACHE, True)

# In CI, hypothesis draws the same examples every run, so a red build is always reproducible;
# locally it explores new ones each time.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI"):
    settings.load_profile("ci")
