"""pytest: import the project from the repository root; start TensorFlow as the scripts do, on the CPU."""
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
# The tests' tiny models and variant lists are the CPU's: hide any GPU from TensorFlow (and from the
# subprocesses, which inherit the environment) before anything imports it.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
from dcgan_completion import runtime  # noqa: E402

runtime.start()  # as the commands start TensorFlow: before any test file imports it

# auto's measured precision decisions go to a cache of the test session's own (the subprocesses
# inherit it), never the user's: the tests measure afresh and leave nothing behind.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_CACHE = tempfile.mkdtemp(prefix="dcgan-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

# The longest files first: `make test` hands whole files to two processes in collection order, so a
# long file collected late leaves one process working alone at the end (test_distribute.py's ~7
# minutes on a 2-core Zen 3 did). Measured with --durations on that CPU.
LONGEST_FIRST = ("test_distribute.py", "test_demo.py", "test_bench.py", "test_complete_cli.py")


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
