"""pytest: import the flat modules from the repository root; keep TensorFlow quiet and on the CPU."""
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests' tiny models and variant lists are the CPU's: hide any GPU from TensorFlow (and from the
# subprocesses, which inherit the environment) before anything imports it.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
import utils  # noqa: E402

utils.default_to_onednn()  # as the commands run TensorFlow; test files import it before any project module

# auto's measured precision decisions go to a cache of the test session's own (the subprocesses
# inherit it), never the user's: the tests measure afresh and leave nothing behind.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_CACHE = tempfile.mkdtemp(prefix="dcgan-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
