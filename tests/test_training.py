"""training.py: a dataset too big for memory is decoded on the fly; unreadable files are still counted and named."""
import numpy as np
from PIL import Image

import model
import train_dcgan
import training


def test_training_streams_a_dataset_that_does_not_fit(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "person").mkdir(parents=True)
    for i in range(17):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(data / "person" / f"{i}.png")
    (data / "broken.png").write_bytes(b"not a png")
    monkeypatch.setattr(training, "memory_budget", lambda: 0)  # nothing fits: stream from disk
    code = train_dcgan.main(["--dataset", str(data), "--image_size", "8", "--gf_dim", "4", "--df_dim", "4",
                             "--z_dim", "4", "--batch_size", "4", "--epoch", "2", "--seed", "0",
                             "--checkpoint_dir", str(tmp_path / "ck"), "--sample_dir", str(tmp_path / "s"),
                             "--log_dir", str(tmp_path / "l")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "decoding on the fly" in out
    # 18 files listed -> 4 steps per epoch (the broken one is only found while streaming)
    restored = model.DCGAN.from_checkpoint(tmp_path / "ck")
    assert int(restored.step) == 8
    assert "skipped 1 unreadable image file" in err and "broken.png" in err
