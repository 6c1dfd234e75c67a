"""Resuming needs no model flags: the checkpoint's shape is used unless a flag asks for another."""
import json

import numpy as np
import pytest
from PIL import Image

import model
import train_dcgan


def test_resume_takes_the_checkpoints_shape(tmp_path, capsys):
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(data / f"{i}.png")
    common = ["--dataset", str(data), "--batch_size", "4", "--seed", "0", "--checkpoint_dir", str(tmp_path / "ck"),
              "--sample_dir", str(tmp_path / "s"), "--log_dir", str(tmp_path / "l")]
    assert train_dcgan.main(common + ["--epoch", "1", "--image_size", "8", "--z_dim", "6", "--gf_dim", "4",
                                      "--df_dim", "4", "--encoder_steps", "0"]) == 0
    assert not (tmp_path / "ck" / "encoder").exists()  # --encoder_steps 0: no encoder
    assert train_dcgan.main(common + ["--epoch", "2"]) == 0  # no model flags: the checkpoint's
    # By default an encoder follows, as many steps as G's 4 (fewer than --encoder_steps' 1500).
    record = json.loads((tmp_path / "ck" / "encoder" / "encoder.json").read_text())
    assert (record["steps"], record["generator_step"], record["z_dim"], record["image_size"]) == (4, 4, 6, 8)
    restored = model.DCGAN.from_checkpoint(tmp_path / "ck")
    assert restored.config.record() == dict(image_size=8, z_dim=6, gf_dim=4, df_dim=4, c_dim=3)
    assert int(restored.step) == 4
    with pytest.raises(SystemExit) as exit_info:
        train_dcgan.main(common + ["--epoch", "3", "--df_dim", "8"])
    assert exit_info.value.code == 2
    assert "--df_dim 8 does not match the checkpoint" in capsys.readouterr().err


def test_input_height_crops_that_square_and_needs_crop(tmp_path, capsys):
    """--input_height 108 --crop, DCGAN-tensorflow's recipe for CelebA: the settings crop 108 x 108."""
    from dcgan_completion.training import settings as training_settings
    args = train_dcgan.parse_args(["--crop", "--input_height", "108"])
    assert train_dcgan.settings_from_args(args).crop_side == 108
    assert train_dcgan.settings_from_args(train_dcgan.parse_args(["--crop"])).crop_side is True
    assert train_dcgan.settings_from_args(train_dcgan.parse_args([])).crop_side is False
    with pytest.raises(SystemExit) as exit_info:
        train_dcgan.parse_args(["--input_height", "108"])
    assert exit_info.value.code == 2 and "--input_height is the side of the centre crop: add --crop" in \
        capsys.readouterr().err
    with pytest.raises(ValueError, match="input_height must be"):
        training_settings.TrainingSettings(crop=True, input_height=0)
    assert training_settings.TrainingSettings(input_height=54).crop_side == 54  # in the library it implies the crop
