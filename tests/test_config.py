"""ModelConfig: the one type that reads, checks and writes a model's dcgan.json record."""
import json

import pytest

from dcgan_completion.networks.config import ModelConfig
from dcgan_completion.networks.storage import CheckpointError, read_config


def test_the_default_is_the_original_and_its_record_names_no_layout():
    assert ModelConfig().record() == {"image_size": 64, "z_dim": 100, "gf_dim": 64, "df_dim": 64, "c_dim": 3}
    later = ModelConfig(image_size=16, z_dim=8, gf_dim=4, df_dim=4, layout="later")
    assert later.record() == {"image_size": 16, "z_dim": 8, "gf_dim": 4, "df_dim": 4, "c_dim": 3, "layout": "later"}


@pytest.mark.parametrize("config", [ModelConfig(), ModelConfig(32, 8, 4, 4, 1), ModelConfig(layout="later")])
def test_a_record_reads_back_as_the_same_config(config):
    assert ModelConfig.from_record(json.loads(json.dumps(config.record()))) == config


def test_a_record_without_c_dim_is_a_colour_model():  # this port's first dcgan.json files had no c_dim
    assert ModelConfig.from_record({"image_size": 16, "z_dim": 8, "gf_dim": 4, "df_dim": 4}).c_dim == 3


@pytest.mark.parametrize("record, message", [
    ([64, 100], "expected integers image_size, z_dim, gf_dim, df_dim"),
    ({"image_size": 64, "z_dim": 100, "gf_dim": 64}, "expected integers image_size, z_dim, gf_dim, df_dim"),
    ({"image_size": 64, "z_dim": "100", "gf_dim": 64, "df_dim": 64}, "expected integers"),
    ({"image_size": 64, "z_dim": 100, "gf_dim": 64, "df_dim": 64, "colour": 3}, "unknown key 'colour'"),
    ({"image_size": 64, "z_dim": 100, "gf_dim": 64, "df_dim": 64, "c_dim": True}, "positive integer"),
    ({"image_size": 64, "z_dim": 0, "gf_dim": 64, "df_dim": 64}, "positive integer"),
    ({"image_size": 48, "z_dim": 100, "gf_dim": 64, "df_dim": 64}, "power of two >= 8, not 48"),
    ({"image_size": 64, "z_dim": 100, "gf_dim": 64, "df_dim": 64, "layout": "2018"}, "not '2018'"),
])
def test_a_bad_record_says_what_is_wrong(record, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_record(record)


def test_read_config_names_the_file_and_leaves_the_other_records_aside(tmp_path):
    path = tmp_path / "dcgan.json"
    path.write_text(json.dumps({"image_size": 16, "z_dim": 8, "gf_dim": 4, "df_dim": 4, "c_dim": 1,
                                "known_fit": {"mean": 0.1, "std": 0.01, "warn_above": 0.2},
                                "framing": {"kind": "unknown"}}))
    assert read_config(tmp_path) == ModelConfig(16, 8, 4, 4, 1)
    path.write_text(json.dumps({"image_size": 16, "z_dim": 8, "gf_dim": 4, "df_dim": 4, "extra": 1}))
    with pytest.raises(CheckpointError, match=rf"^{path}: unknown key 'extra'"):
        read_config(tmp_path)
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match=rf"^{path}: unreadable"):
        read_config(tmp_path)
