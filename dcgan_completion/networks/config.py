"""A model's configuration: its size and layout, as the checkpoint's `dcgan.json` records them.

The one type that names the keys, holds the original's defaults, checks a record read from a
file and writes it back (`layout` only when it is not the article's, so the article's models
keep the record they always had). storage.py reads and writes the file, and infers a
configuration from the original's TF1 checkpoints, which have none.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import utils
from dcgan_completion.networks import layouts


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64  # the original's defaults (its train flags)
    z_dim: int = 100
    gf_dim: int = 64
    df_dim: int = 64
    c_dim: int = 3
    layout: str = layouts.DEFAULT_LAYOUT

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_record(cls, record: object) -> "ModelConfig":
        """The configuration a dcgan.json record (its other keys removed) describes; ValueError says what is wrong."""
        required = ("image_size", "z_dim", "gf_dim", "df_dim")
        if not isinstance(record, dict) or not all(isinstance(record.get(k), int) for k in required):
            raise ValueError(f"expected integers {', '.join(required)} (and c_dim)")
        unknown = sorted(set(record) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (expected {', '.join(cls.keys())})")
        layout = record.get("layout", layouts.DEFAULT_LAYOUT)
        if layout not in layouts.LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(layouts.LAYOUTS)}, not {layout!r}")
        sizes = {k: v for k, v in record.items() if k != "layout"}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()):
            raise ValueError("every value but layout must be a positive integer")
        if not utils.is_valid_image_size(record["image_size"]):
            raise ValueError(f"image_size must be a power of two >= 8, not {record['image_size']}")
        return cls(**record)

    def record(self) -> dict:
        """As dcgan.json holds it: the sizes, and `layout` only when it is not the article's."""
        record = dataclasses.asdict(self)
        if self.layout == layouts.DEFAULT_LAYOUT:
            del record["layout"]
        return record

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)
