"""The process's start: TensorFlow's environment, set once before TensorFlow is imported, and its
import with its C++ start-up lines hidden. Every script calls `start()` in its main, after parsing
its flags (so that --help and a bad flag answer at once); a library user calls it before importing
the networks to get the same kernels and quiet start.

    from dcgan_completion import runtime
    runtime.start()
"""
from __future__ import annotations

import atexit
import gc
import os
import sys

LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET = "2"  # TensorFlow's C++ log level that hides its start-up chatter, and the level the scripts default to
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def start() -> None:
    """oneDNN's CPU kernels on every x86 CPU, unless the user set TF_ENABLE_ONEDNN_OPTS (TensorFlow
    turns them on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on an AVX2 CPU, AMD EPYC Zen
    3, they trained 1.2-1.45x and completed 1.15-1.3x faster than TensorFlow's own kernels:
    docs/speed.md#onednn-on-every-cpu); TensorFlow's C++ log level 2 unless the user set one; then
    TensorFlow imported, with its start-up lines hidden unless the user asked for its logs (a level
    below 2), and without Keras (without_keras_at_import). Later `import tensorflow` statements cost
    nothing; calling start() again does nothing."""
    os.environ.setdefault(ONEDNN, "1")
    os.environ.setdefault(LOG_LEVEL, QUIET)
    if "tensorflow" in sys.modules:
        return
    with without_keras_at_import():
        if os.environ[LOG_LEVEL] < QUIET:
            import tensorflow  # noqa: F401
        else:
            with silenced_stderr():
                import tensorflow as tf
                tf.config.list_physical_devices()
    # TensorFlow's million objects live as long as the process: kept out of the garbage collector's
    # passes (each pass over them slowed tracing), and out of its last pass at exit (0.5-0.6 s).
    gc.freeze()
    atexit.register(gc.freeze)


KERAS_AT_IMPORT = "keras.src.optimizers"  # what `import tensorflow` imports of Keras, and Keras with it


class without_keras_at_import:
    """`import tensorflow` imports Keras (and Matplotlib with it: 0.6-1 s) for its SavedModel
    registrations; nothing here uses Keras, so that import is skipped (TensorFlow allows it: it
    goes on without Keras). `tf.keras` still imports Keras when something uses it."""

    def __enter__(self):
        self.blocked = KERAS_AT_IMPORT not in sys.modules
        if self.blocked:
            sys.modules[KERAS_AT_IMPORT] = None  # an ImportError, which TensorFlow's __init__ catches
        return self

    def __exit__(self, *exc):
        if self.blocked and sys.modules.get(KERAS_AT_IMPORT, 0) is None:
            del sys.modules[KERAS_AT_IMPORT]
        return False


class silenced_stderr:
    """Send file descriptor 2 to /dev/null for a while: TensorFlow's C++ start-up messages
    (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL in recent releases."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        return False


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """(model name, feature flags) of this machine's CPU as /proc/cpuinfo lists them ("", empty set if none)."""
    name, flags = "", set()
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags
