"""training.py: a dataset too big for memory is decoded on the fly; unreadable files are still counted and named."""
import numpy as np
from PIL import Image

import model
import train_dcgan
import training


def train_tiny(data, tmp_path) -> int:
    """Two epochs of an 8x8 model in batches of 4, in-process."""
    return train_dcgan.main(["--dataset", str(data), "--image_size", "8", "--gf_dim", "4", "--df_dim", "4",
                             "--z_dim", "4", "--batch_size", "4", "--epoch", "2", "--seed", "0",
                             "--checkpoint_dir", str(tmp_path / "ck"), "--sample_dir", str(tmp_path / "s"),
                             "--log_dir", str(tmp_path / "l")])


def test_training_streams_a_dataset_that_does_not_fit(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "person").mkdir(parents=True)
    for i in range(17):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(data / "person" / f"{i}.png")
    (data / "broken.png").write_bytes(b"not a png")
    monkeypatch.setattr(training, "memory_budget", lambda: 0)  # nothing fits: stream from disk
    code = train_tiny(data, tmp_path)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "decoding on the fly" in out
    # 18 files listed -> 4 steps per epoch (the broken one is only found while streaming)
    restored = model.DCGAN.from_checkpoint(tmp_path / "ck")
    assert int(restored.step) == 8
    assert "skipped 1 unreadable image file" in err and "broken.png" in err


def test_streaming_with_many_unreadable_files_still_finishes_its_epochs(tmp_path, monkeypatch, capsys):
    """15 readable files and 3 broken ones, batches of 4: 18 listed files make 4 steps an epoch,
    and every epoch gets them, so the last step is reached and its checkpoint written."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(15):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(data / f"{i}.png")
    for i in range(3):
        (data / f"broken{i}.png").write_bytes(b"not a png")
    monkeypatch.setattr(training, "memory_budget", lambda: 0)
    code = train_tiny(data, tmp_path)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Done: 8 steps" in out and "-" not in out.split("Done:")[1].split("steps")[0]
    assert int(model.DCGAN.from_checkpoint(tmp_path / "ck").step) == 8
    assert "skipped 3 unreadable image files" in err
