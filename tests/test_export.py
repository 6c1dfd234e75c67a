"""export_savedmodel.py: the completion as a SavedModel that a fresh TensorFlow process runs
without this project's Python, and gives complete.py's results (fill/ and final/ with --blend
none, the final loss); z drawn statelessly from the seed as complete.py draws it; the TF weighted
mask as masking's; momentum and the plain mask as the engine's; the bad inputs' one-line errors.

A tiny 16x16 model; the export runs in-process, then the fresh process that loads it and
complete.py run side by side (TensorFlow's start-up dominates).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.completion import masks as masking  # noqa: E402

SIZE, Z_DIM, SEED, ITERATIONS = 16, 8, 7, 12
PROJECT_MODULES = sorted({p.stem for p in ROOT.glob("*.py")} | {"dcgan_completion"})

# Runs in a fresh interpreter (-I: no PYTHONPATH, no script folder on sys.path) that cannot import
# any of the project's modules: only TensorFlow, numpy and the SavedModel.
LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    saved_model, inputs, output, blocked = sys.argv[1], sys.argv[2], sys.argv[3], set(sys.argv[4].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"the project's module {name} was imported")
            return None

    sys.meta_path.insert(0, Blocker())
    signature = tf.saved_model.load(saved_model).signatures["serving_default"]
    data = np.load(inputs)
    out = signature(images=tf.constant(data["images"]), masks=tf.constant(data["masks"]),
                    iterations=tf.constant(int(data["iterations"]), tf.int32),
                    seed=tf.constant(int(data["seed"]), tf.int64))
    np.savez(output, **{name: value.numpy() for name, value in out.items()})
    spec = {"inputs": {name: [s.dtype.name, s.shape.as_list()]
                       for name, s in signature.structured_input_signature[1].items()},
            "outputs": {name: [s.dtype.name, s.shape.as_list()] for name, s in signature.structured_outputs.items()},
            "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in blocked)}
    print("SIGNATURE " + json.dumps(spec))
""")


def one_line_error(capsys, argv) -> str:
    import export_savedmodel

    with pytest.raises(SystemExit) as exit_info:
        export_savedmodel.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == utils.EXIT_ERROR and err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from model import DCGAN

    folder = tmp_path_factory.mktemp("ckpt")
    DCGAN(image_size=SIZE, gf_dim=4, df_dim=4, z_dim=Z_DIM, seed=0).save(folder)
    return folder


@pytest.fixture(scope="module")
def runs(tiny_checkpoint, tmp_path_factory):
    """Export (in-process), then the fresh loader and complete.py on the same image, mask, seed
    and iterations, side by side: (their outputs, the loader's signature, complete.py's folder and stdout)."""
    import export_savedmodel

    work = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, SIZE)
    image = np.stack([ramp[None, :] + 0 * ramp[:, None], ramp[:, None] + 0 * ramp[None, :],
                      rng.integers(0, 256, (SIZE, SIZE))], axis=2).astype(np.uint8)
    utils.save_png(work / "face.png", image)
    mask = np.full((SIZE, SIZE, 3), 255, np.uint8)
    mask[4:11, 3:12] = 0
    utils.save_png(work / "hole.png", mask)
    np.savez(work / "inputs.npz", images=utils.to_float(utils.read_image(work / "face.png"))[None],
             masks=masking.read_mask(work / "hole.png", SIZE)[None, ..., :1],
             iterations=ITERATIONS, seed=SEED)

    assert export_savedmodel.main(["--checkpointDir", str(tiny_checkpoint), "--outDir", str(work / "model" / "1")]) == 0
    loader = work / "loader.py"
    loader.write_text(LOADER)
    fresh = subprocess.Popen([sys.executable, "-I", str(loader), str(work / "model" / "1"), str(work / "inputs.npz"),
                              str(work / "exported.npz"), ",".join(PROJECT_MODULES)],
                             cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    completed = subprocess.run([sys.executable, str(ROOT / "complete.py"), "--checkpointDir", str(tiny_checkpoint),
                                "--mask", str(work / "hole.png"), "--seed", str(SEED), "--nIter", str(ITERATIONS),
                                "--outInterval", str(ITERATIONS), "--blend", "none", "--mixed_precision", "off",
                                "--outDir", str(work / "completions"), str(work / "face.png")],
                               cwd=work, capture_output=True, text=True, timeout=600)
    out, err = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, err[-3000:]
    assert completed.returncode == 0, completed.stderr[-3000:]
    signature = json.loads(out.split("SIGNATURE ", 1)[1])
    return dict(np.load(work / "exported.npz")), signature, work / "completions", completed.stdout


def test_export_in_a_fresh_process_gives_complete_py_results(runs):
    exported, _, folder, stdout = runs
    fill = utils.read_image(folder / "fill" / "face.png").astype(int)
    final = utils.read_image(folder / "final" / "face.png").astype(int)
    assert np.abs(utils.to_uint8(exported["fills"][0]).astype(int) - fill).max() <= 1
    assert np.abs(utils.to_uint8(exported["completed"][0]).astype(int) - final).max() <= 1
    loss = float(re.search(r"mean final loss ([0-9.]+)", stdout).group(1))
    assert exported["losses"][0] == pytest.approx(loss, abs=2e-4, rel=1e-4)
    # The iterations ran: the final z is not the start z.
    from dcgan_completion.completion import engine as completion
    assert not np.allclose(exported["z"], completion.draw_z(SEED, 1, Z_DIM))


def test_signature_and_no_project_module_in_the_fresh_process(runs):
    exported, signature, _, _ = runs
    assert signature["project_modules"] == []
    assert signature["inputs"] == {"images": ["float32", [None, SIZE, SIZE, 3]],
                                   "masks": ["float32", [None, SIZE, SIZE, 1]],
                                   "iterations": ["int32", []], "seed": ["int64", []]}
    assert signature["outputs"] == {"completed": ["float32", [None, SIZE, SIZE, 3]],
                                    "fills": ["float32", [None, SIZE, SIZE, 3]],
                                    "losses": ["float32", [None]], "z": ["float32", [None, Z_DIM]]}
    images = np.load(Path(runs[2]).parent / "inputs.npz")
    known = images["masks"][0, ..., 0] > 0.5
    assert np.array_equal(exported["completed"][0][known], images["images"][0][known])  # known pixels exactly
    assert np.array_equal(exported["completed"][0][~known], exported["fills"][0][~known])


def test_draw_z_in_graph_is_draw_z():
    """The stateless Philox draw from the seed tensor gives draw_z's numbers, bit for bit."""
    import tensorflow as tf

    from dcgan_completion.completion import engine as completion

    in_graph = tf.function(completion.draw_z_in_graph)
    for seed in (0, 1, 7, 1234, 2 ** 31, 2 ** 63 - 1, -1, -5, -2 ** 63):
        for count, z_dim in ((1, 8), (3, 100), (64, 100), (5, 7)):
            expected = completion.draw_z(seed, count, z_dim)
            eager = completion.draw_z_in_graph(tf.constant(seed, tf.int64), count, z_dim).numpy()
            traced = in_graph(tf.constant(seed, tf.int64), tf.constant(count), z_dim).numpy()
            assert np.array_equal(eager, expected), (seed, count, z_dim)
            assert np.array_equal(traced, expected), (seed, count, z_dim)


def test_weighted_masks_in_graph_match_masking():
    from dcgan_completion.completion import engine as completion

    rng = np.random.default_rng(0)
    for size in (9, 16, 64):
        masks = [masking.make_mask(kind, size, rng=rng) for kind in masking.MASK_TYPES if kind != "lowres"]
        expected = np.stack([masking.weighted_mask(mask)[..., :1] for mask in masks])
        got = completion.weighted_masks(np.stack(masks)[..., :1]).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
    odd = (rng.random((1, 12, 12, 1)) > 0.5).astype(np.float32)
    np.testing.assert_allclose(completion.weighted_masks(odd, window=4).numpy()[0],
                               masking.weighted_mask(np.repeat(odd[0], 3, 2), window=4)[..., :1], atol=1e-6)


def test_momentum_and_plain_mask_match_the_engine(tiny_checkpoint):
    """The exported function (not saved: the same graph) against the CompletionEngine, two images
    with their own masks, under the article's momentum and plain L1."""
    import tensorflow as tf

    from dcgan_completion.completion.engine import CompletionEngine
    from dcgan_completion.completion.settings import CompletionSettings
    from dcgan_completion.export import CompletionModule
    from model import DCGAN

    settings = CompletionSettings(approach="momentum", lr=0.02, momentum=0.8, lam=0.3, weighted_mask=False,
                                  n_iter=5, out_interval=5, batch_size=2, seed=3)
    model = DCGAN.from_checkpoint(tiny_checkpoint)
    images = np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.uint8)
    masks = np.stack([masking.make_mask("left", SIZE), masking.make_mask("center", SIZE)])[..., :1]
    expected = CompletionEngine(model, settings).complete(images, masks)
    got = CompletionModule(model, settings).complete(tf.constant(utils.to_float(images)), tf.constant(masks),
                                                     tf.constant(5), tf.constant(3, tf.int64))
    np.testing.assert_allclose(got["fills"].numpy(), expected.fill, atol=1e-5)
    np.testing.assert_allclose(got["losses"].numpy(), expected.loss, rtol=1e-5)
    np.testing.assert_allclose(got["z"].numpy(), expected.z, atol=1e-5)


def test_bad_inputs_are_one_line_errors(tiny_checkpoint, tmp_path, capsys):
    assert "--approach hmc cannot be exported" in one_line_error(
        capsys, ["--checkpointDir", str(tiny_checkpoint), "--outDir", str(tmp_path / "a"), "--approach", "hmc"])
    assert f"checkpoint folder {tmp_path / 'nothing'} does not exist; train one first" in one_line_error(
        capsys, ["--checkpointDir", str(tmp_path / "nothing"), "--outDir", str(tmp_path / "b")])
    (tmp_path / "empty").mkdir()
    assert f"no checkpoint in {tmp_path / 'empty'}: expected a `checkpoint` state file" in one_line_error(
        capsys, ["--checkpointDir", str(tmp_path / "empty"), "--outDir", str(tmp_path / "b")])
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "saved_model.pb").write_bytes(b"")
    assert "not empty" in one_line_error(
        capsys, ["--checkpointDir", str(tiny_checkpoint), "--outDir", str(tmp_path / "used")])
    (tmp_path / "file").write_text("")
    assert "cannot write the SavedModel folder" in one_line_error(
        capsys, ["--checkpointDir", str(tiny_checkpoint), "--outDir", str(tmp_path / "file" / "1")])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_checkpoint_with_an_encoder_exports_its_start(tiny_checkpoint, tmp_path):
    """With an encoder beside the networks the exported completion starts at its guess (the seed is
    unused): the SavedModel's results are the engine's with that encoder, for any seed."""
    import shutil

    import tensorflow as tf

    from dcgan_completion import encoder
    from dcgan_completion import export as saved_model_export
    from dcgan_completion.completion.engine import CompletionEngine
    from dcgan_completion.completion.settings import CompletionSettings
    from model import DCGAN

    folder = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, folder)
    model = DCGAN.from_checkpoint(folder)
    trainer = encoder.EncoderTrainer(model, encoder.for_model(model), encoder.EncoderSettings(batch_size=8))
    trainer.train(3)
    trainer.save(folder)
    out = saved_model_export.export(folder, tmp_path / "model")
    assert json.loads((out / saved_model_export.SETTINGS_FILE).read_text())["start"] == "encoder"
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    masks = np.ones((3, SIZE, SIZE, 1), np.float32)
    masks[:, 4:12, 4:12] = 0.0
    signature = tf.saved_model.load(str(out)).signatures["serving_default"]
    exported = [signature(images=tf.constant(images), masks=tf.constant(masks), iterations=tf.constant(5),
                          seed=tf.constant(seed, tf.int64)) for seed in (0, 99)]
    np.testing.assert_array_equal(exported[0]["z"].numpy(), exported[1]["z"].numpy())
    start = encoder.load(folder, model)
    guess = start(tf.constant(images), tf.constant(masks)).numpy()
    at_start = signature(images=tf.constant(images), masks=tf.constant(masks), iterations=tf.constant(0),
                         seed=tf.constant(0, tf.int64))
    np.testing.assert_allclose(at_start["z"].numpy(), guess, atol=1e-5)  # the start is the encoder's guess
    engine = CompletionEngine(model, CompletionSettings(n_iter=5, out_interval=5), start)
    result = engine.complete(images, masks)
    # Adam's first steps are about lr per coordinate whatever the gradient's size, so where a gradient is
    # near zero the graphs' rounding (the SavedModel's is optimised apart) can move a coordinate otherwise.
    np.testing.assert_allclose(exported[0]["z"].numpy(), result.z, atol=1e-3)
    np.testing.assert_allclose(exported[0]["losses"].numpy(), result.loss, rtol=1e-3)
