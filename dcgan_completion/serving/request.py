"""One web job's request: every option POST /api/jobs takes, typed once from the completion
settings' own constants (the form's fields, their checks and the OpenAPI description all come
from here). None: the server's default, its command line's."""
from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dcgan_completion.completion.settings import APPROACHES, BLENDS, Z_INITS, CompletionSettings
from dcgan_completion.serving.imaging import MASK_TYPES

SETTINGS_FIELDS = frozenset(field.name for field in dataclasses.fields(CompletionSettings))
OWN_FIELDS = frozenset({"seed"})  # a CompletionSettings field the service decides itself (given, or drawn)


class JobRequest(BaseModel):
    """A job's options as the API names them."""
    model_config = ConfigDict(frozen=True)

    mask_type: Literal[MASK_TYPES] | None = Field(None, description="a built-in mask (masking.make_mask), "
                                                                    "without a mask file")
    photo: bool | None = Field(None, description="true: a whole photo, filled through its detected, aligned faces; "
                                                 "false: an aligned face; not given: the server decides (its "
                                                 "largest face's aligned square against the image's size) and "
                                                 "says why in the job's notes")
    n_iter: int | None = Field(None, description="iterations (--nIter)")
    approach: Literal[APPROACHES] | None = None
    lam: float | None = Field(None, description="weight of the perceptual loss")
    lr: float | None = None
    momentum: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    hmc_beta: float | None = None
    hmc_eps: float | None = None
    hmc_l: int | None = None
    hmc_anneal: float | None = None
    out_interval: int | None = Field(None, description="iterations between live frames")
    seed: int | None = Field(None, description="the job's z (and random mask); drawn and reported when not given")
    weighted_mask: bool | None = None
    z_candidates: int | None = None
    z_init: Literal[Z_INITS] | None = Field(None, description="where z starts: the model's encoder (where it has "
                                                              "one), or random")
    tune_g: bool | None = Field(None, description="after the z search, tune a copy of G to each face, stopped by "
                                                  "held-out known pixels (--tuneG)")
    tune_steps: int | None = Field(None, description="at most this many tuning steps a face (--tuneSteps)")
    tune_lr: float | None = Field(None, description="the tuning's Adam step (--tuneLr)")
    blend: Literal[BLENDS] | None = None
    center_scale: float | None = None

    def settings_changes(self) -> dict:
        """The CompletionSettings fields this request sets (all but the seed, which the service decides)."""
        names = (SETTINGS_FIELDS & set(type(self).model_fields)) - OWN_FIELDS
        return {name: getattr(self, name) for name in sorted(names) if getattr(self, name) is not None}
