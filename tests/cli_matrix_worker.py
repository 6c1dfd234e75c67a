"""Run by tests/test_distribute.py in a fresh process (one TensorFlow start-up for many runs):
train_dcgan.py's and complete.py's main, in this process, for each --strategy and each
--mixed_precision given.

    python tests/cli_matrix_worker.py DATA OUT STRATEGY[,STRATEGY...] PRECISION...

For each strategy S and precision P, first train_dcgan.py on DATA into OUT/S/P/{ck,samples,logs}
with P forced (TRAIN_FLAGS below: one epoch); then, on the chief only, complete.py on two of
DATA's images with OUT/S/P/ck into OUT/S/P/completed, under the same strategy (default for
multiworker, which complete.py does not offer) and precision. Writes OUT/results-<task>.json:
{S: {P: {"train": run, "complete": run}}}, a run being the exit code, the stdout and the last line
of stderr. An exception other than SystemExit (a bug: a traceback) is recorded as its one-line
text, and this process then exits with 3 at once, so that the other workers do not wait on it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import complete  # noqa: E402
import train_dcgan  # noqa: E402
import utils  # noqa: E402

MODEL_FLAGS = ["--image_size", "16", "--z_dim", "8", "--gf_dim", "8", "--df_dim", "8"]
TRAIN_FLAGS = ["--batch_size", "8", "--epoch", "1", "--sample_every", "1", "--save_every", "1", "--seed", "0"]


class Tee(io.StringIO):
    """Keeps what is written and passes it on (the test shows it when a run fails)."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text):
        self.stream.write(text)
        return super().write(text)


def call(main, argv: list) -> dict:
    out, err = Tee(sys.stdout), Tee(sys.stderr)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exit_:
                code = exit_.code
    except Exception as error:  # a bug: say so in one line, then stop this process
        traceback.print_exc()
        return dict(code=None, exception=f"{type(error).__name__}: {str(error).splitlines()[0][:300]}",
                    stdout=out.getvalue())
    lines = err.getvalue().strip().splitlines()
    return dict(code=code, stdout=out.getvalue(), last_error=lines[-1] if lines else "")


def main(data: Path, out: Path, strategies: list[str], precisions: list[str]) -> None:
    task = os.environ.get("TF_CONFIG") and json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    results: dict = {strategy: {} for strategy in strategies}
    record = out / f"results-{task or 0}.json"

    def note(strategy: str, precision: str, what: str, run: dict) -> None:
        results[strategy].setdefault(precision, {})[what] = run
        record.write_text(json.dumps(results, indent=1))
        if run.get("exception"):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(3)

    for strategy in strategies:
        for precision in precisions:
            folder = out / strategy / precision
            note(strategy, precision, "train", call(train_dcgan.main, [
                "--dataset", data, *MODEL_FLAGS, *TRAIN_FLAGS, "--strategy", strategy, "--mixed_precision",
                precision, "--checkpoint_dir", folder / "ck", "--sample_dir", folder / "samples",
                "--log_dir", folder / "logs"]))
    if task:  # not the chief: it has no checkpoint to complete with
        return
    images = sorted(utils.list_images(data))[:2]
    for strategy in strategies:
        for precision in precisions:
            folder = out / strategy / precision
            if results[strategy][precision]["train"]["code"] == 0:
                note(strategy, precision, "complete", call(complete.main, [
                    "--checkpointDir", folder / "ck", "--outDir", folder / "completed", "--nIter", "1",
                    "--outInterval", "1", "--batchSize", "2", "--seed", "0", "--strategy",
                    "default" if strategy == "multiworker" else strategy, "--mixed_precision", precision, *images]))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), sys.argv[4:])
