#!/usr/bin/env python3
"""Make a deterministic data set of procedural, face-like 64x64 images.

    python data/make_faces.py data/faces --count 2000 --heldout 64 --size 64 --seed 0

No face photographs can be downloaded everywhere, so this is the project's
embedded default data set: cartoon faces drawn with Pillow at 4x the output
size and box-downsampled (anti-aliased). Each face varies skin tone, face
shape and size, eyes (iris colour, gaze), eyebrows, nose, mouth expression
(smile, neutral, open, frown), hair style and colour, glasses, beard, clothes,
background, lighting direction and a slight rotation; eyes and mouth stay near
the same places in every image, roughly as OpenFace's alignment leaves real
faces, so that a DCGAN learns the distribution quickly, even on a CPU.

Every image is a pure function of (seed, index): render_face(index, seed, size).
The training images use indices 0 .. count-1 and the held-out images use
HELDOUT_START + 0 .. HELDOUT_START + heldout-1, so the two sets never share a
face, whatever --count is. Files are written as OUT/train/face_00000.png and
OUT/heldout/face_00000.png, atomically; files that already exist are skipped,
so a second run is instant. OUT/make_faces.json records the seed and size, and
a run with another seed or size into the same folder is refused. Each of train/ and
heldout/ gets a framing.json (where the eyes and mouth are), which train_dcgan.py
records in its model, so that photos are cut for it the way these faces are drawn.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.faces.framing import FRAMING_FILE  # noqa: E402

VERSION = 1                  # bump when the drawing changes, so old folders are not mixed with new faces
HELDOUT_START = 1_000_000_000  # held-out faces use indices from here on: disjoint from any training index
SUPERSAMPLE = 4              # draw at 4x the output size, then box-downsample
MANIFEST = "make_faces.json"
FRAMING = {  # where render_face's eyes and mouth land, as dlib finds them (framing.py's "drawn" kind)
    "kind": "drawn", "by": "data/make_faces.py", "eyes": [[0.342, 0.41], [0.66, 0.41]], "mouth": [0.501, 0.766],
    "measured": "dlib's eye centres and mouth-corner midpoint on 187 of 200 make_faces.py --seed 3 faces, "
                "in unit coordinates"}

# Colour palettes (RGB).
SKIN_TONES = np.array([(255, 226, 204), (243, 203, 170), (229, 180, 140), (205, 148, 105),
                       (170, 114, 78), (128, 82, 54), (88, 58, 40)], dtype=np.float64)
HAIR_COLOURS = [(24, 20, 18), (45, 32, 24), (78, 52, 34), (112, 74, 44), (140, 72, 38),
                (190, 150, 90), (222, 196, 140), (160, 156, 150), (225, 222, 215)]
HAIR_WEIGHTS = np.array([18, 18, 16, 12, 6, 9, 6, 5, 3], dtype=np.float64)
DYED_HAIR = [(70, 90, 170), (190, 80, 150), (90, 150, 120), (200, 60, 60)]
IRIS_COLOURS = [(70, 45, 25), (100, 66, 36), (40, 28, 20), (70, 110, 160), (90, 140, 110), (120, 120, 130)]
IRIS_WEIGHTS = np.array([30, 22, 16, 16, 9, 7], dtype=np.float64)
FRAME_COLOURS = [(20, 20, 20), (60, 40, 30), (170, 170, 175), (190, 160, 80), (120, 30, 40), (30, 50, 110)]
HAIR_STYLES = ("short", "fringe", "side", "long", "curly", "buzz", "bald")
HAIR_STYLE_WEIGHTS = np.array([22, 16, 16, 24, 8, 8, 6], dtype=np.float64)
MOUTHS = ("smile", "neutral", "open", "frown", "grin")
MOUTH_WEIGHTS = np.array([30, 30, 12, 13, 15], dtype=np.float64)


def _choice(rng: np.random.Generator, items, weights: np.ndarray):
    return items[int(rng.choice(len(items), p=weights / weights.sum()))]


def _mix(a, b, t: float) -> tuple:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _scale(colour, factor: float) -> tuple:
    return tuple(int(max(0, min(255, round(c * factor)))) for c in colour)


def _rgba(colour, alpha: float) -> tuple:
    return (*[int(c) for c in colour], int(max(0, min(255, round(alpha)))))


class _Canvas:
    """The foreground drawn at high resolution: colour, coverage (alpha) and the face's skin mask."""

    def __init__(self, size: int):
        self.size = size
        self.rgb = Image.new("RGB", (size, size), (0, 0, 0))
        self.alpha = Image.new("L", (size, size), 0)
        self.skin = Image.new("L", (size, size), 0)
        self.draw = ImageDraw.Draw(self.rgb, "RGBA")  # RGBA mode blends semi-transparent fills
        self.draw_alpha = ImageDraw.Draw(self.alpha)
        self.draw_skin = ImageDraw.Draw(self.skin)

    def p(self, x: float, y: float) -> tuple:
        """Unit coordinates (0..1 across the image) to pixels."""
        return (x * self.size, y * self.size)

    def box(self, cx: float, cy: float, rx: float, ry: float) -> list:
        s = self.size
        return [(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s]

    def w(self, fraction: float) -> int:
        """A line width given as a fraction of the image size."""
        return max(1, int(round(fraction * self.size)))

    def ellipse(self, cx, cy, rx, ry, fill, opaque=True, skin=False):
        box = self.box(cx, cy, rx, ry)
        self.draw.ellipse(box, fill=fill)
        if opaque:
            self.draw_alpha.ellipse(box, fill=255)
        if skin:
            self.draw_skin.ellipse(box, fill=255)

    def polygon(self, points, fill, opaque=True, skin=False):
        pts = [self.p(x, y) for x, y in points]
        self.draw.polygon(pts, fill=fill)
        if opaque:
            self.draw_alpha.polygon(pts, fill=255)
        if skin:
            self.draw_skin.polygon(pts, fill=255)

    def line(self, points, fill, width: float):
        pts = [self.p(x, y) for x, y in points]
        self.draw.line(pts, fill=fill, width=self.w(width), joint="curve")

    def paste_mask(self, colour_image, mask: Image.Image, opaque=True):
        self.rgb.paste(colour_image, (0, 0), mask)
        if opaque:
            self.alpha.paste(255, (0, 0), mask)


def _face_outline(cx, cy, fw, fh, taper, jaw, n=72):
    """A face-shaped oval: an ellipse whose lower half narrows towards the chin."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    s, c = np.sin(t), np.cos(t)
    lower = np.clip(s, 0.0, None)
    x = fw * c * (1.0 - taper * lower ** 1.5) * (1.0 + jaw * np.clip(s, 0, None) * (1 - lower))
    y = fh * s
    return list(zip(cx + x, cy + y))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A flat, gradient, radial or blurred-blob background as float (S, S, 3) in 0..255."""
    def colour():
        hue = rng.random()
        sat = rng.uniform(0.05, 0.55)
        val = rng.uniform(0.25, 0.95)
        rgb = np.array([abs(((hue * 6 + k) % 6) - 3) - 1 for k in (0, 4, 2)]).clip(0, 1)
        return 255.0 * val * (1 - sat + sat * rgb)

    kind = rng.choice(4, p=[0.3, 0.35, 0.2, 0.15])
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    c1 = colour()
    if kind == 0:
        return np.broadcast_to(c1, (size, size, 3)).astype(np.float64)
    c2 = colour()
    if kind == 1:
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle) + 0.5
    elif kind == 2:
        ox, oy = rng.uniform(0.2, 0.8, 2)
        t = np.sqrt((xx - ox) ** 2 + (yy - oy) ** 2) / 0.9
    else:
        t = np.zeros((size, size))
        for _ in range(int(rng.integers(3, 7))):
            ox, oy = rng.uniform(0, 1, 2)
            r = rng.uniform(0.1, 0.3)
            t += np.exp(-((xx - ox) ** 2 + (yy - oy) ** 2) / (2 * r * r)) * rng.uniform(0.4, 1.0)
        t = t / max(t.max(), 1e-6)
    t = np.clip(t, 0, 1)[..., None]
    return c1 * (1 - t) + c2 * t


def _hair_texture(rng, H: int, hair_colour) -> Image.Image:
    """A hair-coloured image with a few strands, pasted through the hair's shape."""
    texture = Image.new("RGB", (H, H), hair_colour)
    draw = ImageDraw.Draw(texture, "RGBA")
    light = _scale(hair_colour, 1.35) if max(hair_colour) < 200 else _scale(hair_colour, 0.85)
    dark = _scale(hair_colour, 0.65)
    for _ in range(14):
        x0 = rng.uniform(0.1, 0.9) * H
        y0 = rng.uniform(-0.1, 0.3) * H
        bend = rng.uniform(-0.2, 0.2) * H
        pts = [(x0, y0), (x0 + bend * 0.5, y0 + 0.2 * H), (x0 + bend, y0 + 0.45 * H)]
        draw.line(pts, fill=_rgba(light if rng.random() < 0.5 else dark, 90), width=max(1, H // 64), joint="curve")
    return texture


@dataclass(frozen=True)
class _Look:
    """Where a face's features go (unit coordinates) and its colours."""
    cx: float            # the face's centre line
    ey: float            # the eye line
    ex: float            # half the distance between the eyes
    my: float            # the mouth
    fw: float            # the face's half-width and half-height, and its centre's height
    fh: float
    cy: float
    skin: tuple
    hair: tuple
    style: str
    clothes: tuple
    face_points: list


def _draw_hair(cv: _Canvas, rng, f: _Look, back: bool) -> None:
    """Hair: the back layer (behind the head, long styles) or the front layer (over the forehead)."""
    H, style, hair, cx, cy, fw, fh, ey = cv.size, f.style, f.hair, f.cx, f.cy, f.fw, f.fh, f.ey
    if back:
        if style == "long":
            top = cy - fh * 1.02
            pts = [(cx - fw * 1.28, 1.1), (cx - fw * 1.3, ey), (cx - fw * 1.1, top + 0.1),
                   (cx, top - 0.02), (cx + fw * 1.1, top + 0.1), (cx + fw * 1.3, ey), (cx + fw * 1.28, 1.1)]
            cv.polygon(pts, _scale(hair, 0.8))
        elif style == "curly":
            n = 40
            t = np.linspace(0, 2 * math.pi, n, endpoint=False)
            r = 1.0 + 0.06 * np.sin(t * 9 + rng.uniform(0, 6))
            pts = list(zip(cx + fw * 1.42 * r * np.cos(t), cy - fh * 0.25 + fh * 1.0 * r * np.sin(t)))
            cv.polygon(pts, _scale(hair, 0.85))
        return
    if style == "bald":
        return
    # The head's hair: a cap shape minus a window (face below the hairline).
    hair_mask = Image.new("L", (H, H), 0)
    dm = ImageDraw.Draw(hair_mask)
    head_cy = cy - fh * 0.12
    dm.ellipse(cv.box(cx, head_cy, fw * (1.1 if style != "curly" else 1.3), fh * 1.0), fill=255)
    if style in ("short", "fringe", "side", "buzz"):
        # Short hair reaches just below the top of the ears.
        cut = ey + rng.uniform(-0.02, 0.04)
        dm.rectangle([0, cut * H, H, H], fill=0)
    if style == "long":
        dm.polygon([cv.p(cx - fw * 1.2, ey - 0.1), cv.p(cx - fw * 1.22, 1.1), cv.p(cx - fw * 0.82, 1.1),
                    cv.p(cx - fw * 0.95, ey - 0.1)], fill=255)
        dm.polygon([cv.p(cx + fw * 1.2, ey - 0.1), cv.p(cx + fw * 1.22, 1.1), cv.p(cx + fw * 0.82, 1.1),
                    cv.p(cx + fw * 0.95, ey - 0.1)], fill=255)
    xs = np.linspace(cx - fw * 1.3, cx + fw * 1.3, 33)
    line = _hairline(rng, style, xs, (xs - cx) / fw, ey)
    window = Image.new("L", (H, H), 0)
    dw = ImageDraw.Draw(window)
    dw.polygon([cv.p(x, y) for x, y in f.face_points], fill=255)
    above = [cv.p(xs[0], -0.1)] + [cv.p(x, y) for x, y in zip(xs, line)] + [cv.p(xs[-1], -0.1)]
    dw.polygon(above, fill=0)
    hair_mask = ImageChops.subtract(hair_mask, window)
    if style == "buzz":
        hair_mask = hair_mask.point(lambda v: v * 150 // 255)
    cv.paste_mask(_hair_texture(rng, H, hair), hair_mask, opaque=style != "buzz")


def _hairline(rng, style: str, xs: np.ndarray, u: np.ndarray, ey: float) -> np.ndarray:
    """The hairline's height at xs (u: the same, in face half-widths from the centre line)."""
    if style == "fringe":
        base = ey - rng.uniform(0.07, 0.11)
        line = base + 0.03 * u ** 2
        return line + np.where(np.arange(len(xs)) % 2 == 0, 0.0, -rng.uniform(0.01, 0.025))  # jagged ends
    if style == "side":
        base = ey - rng.uniform(0.13, 0.19)
        side = rng.choice([-1.0, 1.0])
        return base + 0.07 * np.clip(side * u, 0, None) ** 1.2 - 0.03 * np.clip(-side * u, 0, None) + 0.04 * u ** 2
    if style == "long":
        base = ey - rng.uniform(0.12, 0.19)
        part = rng.uniform(-0.3, 0.3)
        return base + 0.09 * np.abs(u - part) ** 1.3
    if style == "curly":
        base = ey - rng.uniform(0.13, 0.18)
        return base + 0.05 * u ** 2 + 0.01 * np.sin(u * 12)
    base = ey - rng.uniform(0.16, 0.22)  # short, buzz
    return base + 0.06 * u ** 2 - 0.02 * np.exp(-((u * 3) ** 2)) * rng.uniform(0, 1)


def _draw_eye(cv: _Canvas, rng, x, y, ew, eh, iris_colour, gaze, skin, blink):
    H = cv.size
    cv.ellipse(x, y - eh * 0.2, ew * 1.35, eh * 1.8, _rgba(_scale(skin, 0.8), 45), opaque=False)  # socket
    if blink:
        cv.line([(x - ew, y), (x, y + eh * 0.45), (x + ew, y)], (40, 28, 25), 0.012)
        return
    pad = 2
    x0, y0 = int((x - ew) * H) - pad, int((y - eh) * H) - pad
    x1, y1 = int(math.ceil((x + ew) * H)) + pad, int(math.ceil((y + eh) * H)) + pad
    w, h = x1 - x0, y1 - y0
    eye = Image.new("RGB", (w, h), (246, 244, 238))
    de = ImageDraw.Draw(eye)
    ix, iy = (x + gaze[0] * ew * 0.35) * H - x0, (y + gaze[1] * eh * 0.25) * H - y0
    ir = eh * rng.uniform(0.85, 1.05) * H
    de.ellipse([ix - ir, iy - ir, ix + ir, iy + ir], fill=iris_colour)
    de.ellipse([ix - ir * 0.7, iy - ir * 0.7, ix + ir * 0.7, iy + ir * 0.7], fill=_scale(iris_colour, 0.75))
    pr = ir * rng.uniform(0.38, 0.5)
    de.ellipse([ix - pr, iy - pr, ix + pr, iy + pr], fill=(12, 10, 10))
    hr = ir * 0.22
    de.ellipse([ix - ir * 0.35 - hr, iy - ir * 0.35 - hr, ix - ir * 0.35 + hr, iy - ir * 0.35 + hr], fill=(255, 255, 255))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).ellipse([(x - ew) * H - x0, (y - eh) * H - y0, (x + ew) * H - x0, (y + eh) * H - y0], fill=255)
    cv.rgb.paste(eye, (x0, y0), mask)
    # Upper lid and lashes, and a faint lower lid.
    box = cv.box(x, y, ew, eh)
    cv.draw.arc(box, 185, 355, fill=(35, 25, 22), width=cv.w(0.011))
    cv.draw.arc(box, 20, 160, fill=_rgba(_scale(skin, 0.6), 110), width=cv.w(0.005))


def _draw_mouth(cv: _Canvas, rng, mx, my, mw, kind, lip, skin):
    u = np.linspace(-1.0, 1.0, 25)
    xs = mx + mw * u
    if kind in ("smile", "grin"):
        k = rng.uniform(0.018, 0.035)
    elif kind == "frown":
        k = -rng.uniform(0.012, 0.025)
    else:
        k = rng.uniform(-0.004, 0.006)
    centre = my - k * u ** 2 + k * 0.5          # corners higher for a smile
    bulge = 1.0 - u ** 2
    upper_t = rng.uniform(0.008, 0.016)
    lower_t = rng.uniform(0.012, 0.022)
    if kind in ("open", "grin"):
        gap = rng.uniform(0.02, 0.045) if kind == "open" else rng.uniform(0.012, 0.022)
        top = centre - gap * 0.3 * bulge
        bottom = centre + gap * bulge
        inner = list(zip(xs, top)) + list(zip(xs[::-1], bottom[::-1]))
        cv.polygon(inner, (70, 22, 28), opaque=False)
        # Teeth along the top of the opening, drawn clipped to it.
        H = cv.size
        clip = Image.new("L", (H, H), 0)
        ImageDraw.Draw(clip).polygon([cv.p(x, y) for x, y in inner], fill=255)
        teeth = Image.new("L", (H, H), 0)
        tooth_h = gap * (0.45 if kind == "open" else 0.7)
        ImageDraw.Draw(teeth).polygon([cv.p(x, y) for x, y in zip(xs, top - 0.01)]
                                      + [cv.p(x, y + tooth_h * b) for x, y, b in zip(xs[::-1], top[::-1], bulge[::-1])],
                                      fill=255)
        cv.rgb.paste((238, 234, 222), (0, 0), ImageChops.multiply(clip, teeth))
        upper = list(zip(xs, top - upper_t * bulge)) + list(zip(xs[::-1], top[::-1]))
        lower = list(zip(xs, bottom)) + list(zip(xs[::-1], (bottom + lower_t * bulge)[::-1]))
        cv.polygon(upper, lip, opaque=False)
        cv.polygon(lower, _scale(lip, 1.08), opaque=False)
    else:
        upper = list(zip(xs, centre - upper_t * bulge)) + list(zip(xs[::-1], centre[::-1]))
        lower = list(zip(xs, centre)) + list(zip(xs[::-1], (centre + lower_t * bulge)[::-1]))
        cv.polygon(upper, lip, opaque=False)
        cv.polygon(lower, _scale(lip, 1.08), opaque=False)
        cv.line(list(zip(xs, centre)), _scale(lip, 0.55), 0.007)
    # Shadow under the lower lip.
    cv.ellipse(mx, my + lower_t + 0.03, mw * 0.45, 0.012, _rgba(_scale(skin, 0.75), 60), opaque=False)


def _draw_glasses(cv: _Canvas, rng, ex, ey, ew, eh, fw, cx):
    frame = FRAME_COLOURS[int(rng.integers(len(FRAME_COLOURS)))]
    sun = rng.random() < 0.25
    round_lens = rng.random() < 0.4
    rx, ry = ew * rng.uniform(1.4, 1.7), eh * rng.uniform(2.0, 2.6)
    width = rng.uniform(0.008, 0.016)
    for s in (-1, 1):
        x = cx + s * ex
        box = cv.box(x, ey + 0.004, rx, ry if not round_lens else rx * 0.9)
        lens = _rgba((20, 20, 25), 215) if sun else _rgba((200, 220, 235), 28)
        if round_lens:
            cv.draw.ellipse(box, fill=lens, outline=frame, width=cv.w(width))
        else:
            cv.draw.rounded_rectangle(box, radius=0.35 * min(box[2] - box[0], box[3] - box[1]),
                                      fill=lens, outline=frame, width=cv.w(width))
        cv.line([(x + s * rx, ey - 0.01), (cx + s * fw * 1.0, ey - 0.02)], frame, width)
    cv.line([(cx - ex + rx, ey - 0.005), (cx, ey - 0.015), (cx + ex - rx, ey - 0.005)], frame, width)


def _look(rng) -> _Look:
    """Eyes and mouth near fixed places (aligned); the head's size and shape, and the colours, vary."""
    cx = 0.5 + rng.normal(0, 0.012)
    ey = 0.40 + rng.normal(0, 0.01)
    ex = 0.165 + rng.normal(0, 0.007)
    my = 0.765 + rng.normal(0, 0.012)
    fw = rng.uniform(0.33, 0.41)
    fh = float(np.clip(fw * rng.uniform(1.2, 1.4), 0.42, 0.56))
    cy = my + 0.2 - fh + rng.normal(0, 0.01)   # chin a little below the mouth
    cy = min(cy, ey + 0.1)
    taper = rng.uniform(0.1, 0.32)
    jaw = rng.uniform(0.0, 0.25)

    skin_t = rng.beta(1.3, 1.6) * (len(SKIN_TONES) - 1)
    lo = int(min(skin_t, len(SKIN_TONES) - 2))
    skin_arr = SKIN_TONES[lo] + (SKIN_TONES[lo + 1] - SKIN_TONES[lo]) * (skin_t - lo)
    skin_arr = skin_arr * (1 + rng.normal(0, 0.03, 3))
    skin = tuple(int(v) for v in np.clip(skin_arr, 0, 255))
    if rng.random() < 0.05:
        hair = DYED_HAIR[int(rng.integers(len(DYED_HAIR)))]
    else:
        hair = _choice(rng, HAIR_COLOURS, HAIR_WEIGHTS)
    hair = _scale(hair, rng.uniform(0.85, 1.15))
    style = _choice(rng, HAIR_STYLES, HAIR_STYLE_WEIGHTS)
    clothes = tuple(int(v) for v in rng.integers(20, 230, 3))
    return _Look(cx, ey, ex, my, fw, fh, cy, skin, hair, style, clothes, _face_outline(cx, cy, fw, fh, taper, jaw))


def _draw_head(cv: _Canvas, rng, f: _Look) -> None:
    """Behind the head (long hair, neck, shoulders), the ears, then the face with its blush and freckles."""
    _draw_hair(cv, rng, f, back=True)
    cx, cy, fw, fh, ey, skin = f.cx, f.cy, f.fw, f.fh, f.ey, f.skin
    cv.ellipse(cx, 1.22, rng.uniform(0.45, 0.65), 0.3, f.clothes)
    neck_w = fw * rng.uniform(0.5, 0.62)
    cv.polygon([(cx - neck_w, cy + fh * 0.4), (cx + neck_w, cy + fh * 0.4),
                (cx + neck_w * 1.1, 1.1), (cx - neck_w * 1.1, 1.1)], _scale(skin, 0.78))
    if rng.random() < 0.5:  # a collar line
        cv.line([(cx - neck_w * 1.6, 1.02), (cx, 1.0 + 0.06), (cx + neck_w * 1.6, 1.02)], _scale(f.clothes, 0.7), 0.02)
    for s in (-1, 1):
        cv.ellipse(cx + s * fw * 0.97, ey + 0.05, 0.045, 0.08, _scale(skin, 0.9), skin=True)
        cv.ellipse(cx + s * fw * 0.99, ey + 0.05, 0.02, 0.045, _rgba(_scale(skin, 0.7), 90), opaque=False)
    cv.polygon(f.face_points, skin, skin=True)
    if rng.random() < 0.35:  # blush
        for s in (-1, 1):
            cv.ellipse(cx + s * f.ex * 1.15, ey + 0.17, 0.06, 0.035, (220, 110, 110, int(rng.integers(20, 50))), opaque=False)
    if rng.random() < 0.1:   # freckles
        for _ in range(14):
            fx, fy = cx + rng.uniform(-0.2, 0.2), ey + rng.uniform(0.08, 0.17)
            cv.ellipse(fx, fy, 0.006, 0.006, _rgba(_scale(skin, 0.7), 120), opaque=False)


def _draw_beard(cv: _Canvas, rng, f: _Look) -> float:
    """Stubble or a beard around the mouth and chin; returns the draw that chose it (the moustache reads it)."""
    beard = rng.random()
    if f.style == "long" and rng.random() < 0.8:
        beard = 1.0  # long hair: mostly no beard
    if beard < 0.14:
        H, cx, fw, ey = cv.size, f.cx, f.fw, f.ey
        alpha = rng.uniform(50, 90) if beard < 0.07 else rng.uniform(215, 245)
        beard_mask = Image.new("L", (H, H), 0)
        db = ImageDraw.Draw(beard_mask)
        db.polygon([cv.p(x, y) for x, y in f.face_points], fill=int(alpha))
        xs = np.linspace(cx - fw * 1.3, cx + fw * 1.3, 33)
        u = np.clip(np.abs(xs - cx) / fw, 0, 1)
        top = ey + 0.07 + (f.my - 0.04 - ey - 0.07) * (1 - u ** 1.6)
        db.polygon([cv.p(xs[0], -0.1)] + [cv.p(x, y) for x, y in zip(xs, top)] + [cv.p(xs[-1], -0.1)], fill=0)
        cv.paste_mask(_hair_texture(rng, H, _scale(f.hair, 0.9)), beard_mask, opaque=False)
    return beard


def _draw_nose(cv: _Canvas, rng, f: _Look, light_side: float) -> None:
    """A shaded side (away from the light), a tip and nostrils."""
    cx, ey, skin = f.cx, f.ey, f.skin
    nose_y = ey + rng.uniform(0.19, 0.23)
    nose_w = rng.uniform(0.035, 0.055)
    shade = _rgba(_scale(skin, 0.7), rng.uniform(45, 80))
    cv.polygon([(cx - light_side * 0.012, ey + 0.03), (cx - light_side * 0.03, ey + 0.05),
                (cx - light_side * nose_w * 1.1, nose_y - 0.01), (cx - light_side * 0.005, nose_y - 0.005)], shade, opaque=False)
    cv.ellipse(cx, nose_y - 0.012, nose_w * 0.7, 0.022, _rgba(_scale(skin, 1.12), 60), opaque=False)
    for s in (-1, 1):
        cv.ellipse(cx + s * nose_w * 0.5, nose_y + 0.004, nose_w * 0.3, 0.011, _rgba(_scale(skin, 0.45), 150), opaque=False)


def _draw_eyes(cv: _Canvas, rng, f: _Look) -> tuple[float, float]:
    """Both eyes and eyebrows; returns an eye's half-width and half-height (the glasses fit them)."""
    cx, ey, ex, hair = f.cx, f.ey, f.ex, f.hair
    ew = rng.uniform(0.055, 0.072)
    eh = ew * rng.uniform(0.45, 0.62)
    iris = _choice(rng, IRIS_COLOURS, IRIS_WEIGHTS)
    gaze = (float(np.clip(rng.normal(0, 0.45), -1, 1)), float(np.clip(rng.normal(0, 0.3), -1, 1)))
    blink = rng.random() < 0.04
    for s in (-1, 1):
        _draw_eye(cv, rng, cx + s * ex, ey, ew, eh, iris, gaze, f.skin, blink)
    brow_colour = _scale(hair, 0.7) if max(hair) < 200 else _scale(hair, 0.55)
    brow_w = rng.uniform(0.012, 0.026)
    brow_y = ey - eh - rng.uniform(0.035, 0.06)
    tilt = rng.normal(0, 0.012)              # inner end up (worried) or down (stern)
    arch = rng.uniform(0.0, 0.02)
    for s in (-1, 1):
        inner, outer = cx + s * (ex - ew * 0.9), cx + s * (ex + ew * 1.2)
        cv.line([(inner, brow_y - tilt), ((inner + outer) / 2, brow_y - arch), (outer, brow_y + 0.01)], brow_colour, brow_w)
    return ew, eh


def _draw_lips(cv: _Canvas, rng, f: _Look, beard: float) -> None:
    """The mouth, and a moustache with some of the beards."""
    cx, my = f.cx, f.my
    lip = _mix(f.skin, (185, 70, 80), rng.uniform(0.3, 0.6))
    lip = _scale(lip, 0.9)
    _draw_mouth(cv, rng, cx + rng.normal(0, 0.005), my, rng.uniform(0.075, 0.12),
                _choice(rng, MOUTHS, MOUTH_WEIGHTS), lip, f.skin)
    if beard >= 0.07 and beard < 0.2 and rng.random() < 0.6:  # moustache
        cv.polygon([(cx - 0.09, my - 0.005), (cx - 0.05, my - 0.04), (cx, my - 0.035),
                    (cx + 0.05, my - 0.04), (cx + 0.09, my - 0.005), (cx, my - 0.02)], _scale(f.hair, 0.85), opaque=False)


def _photograph(cv: _Canvas, rng, f: _Look, size: int, light_side: float) -> np.ndarray:
    """A slight rotation about the point between the eyes, the downsampling, the light, the
    background and the camera (white balance, sensor noise): the uint8 image."""
    H = cv.size
    angle = rng.normal(0, 3.5)
    centre = (f.cx * H, f.ey * H)
    rgb = cv.rgb.rotate(angle, Image.Resampling.BILINEAR, center=centre).reduce(SUPERSAMPLE)
    alpha = cv.alpha.rotate(angle, Image.Resampling.BILINEAR, center=centre).reduce(SUPERSAMPLE)
    skin_mask = cv.skin.rotate(angle, Image.Resampling.BILINEAR, center=centre).reduce(SUPERSAMPLE)

    fg = np.asarray(rgb, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)[..., None] / 255.0
    face = np.asarray(skin_mask, dtype=np.float64) / 255.0

    # Lighting: a directional gradient, and a soft darkening towards the face's edge.
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    light_angle = math.atan2(rng.uniform(-0.6, 0.3), light_side) if rng.random() < 0.85 else rng.uniform(0, 2 * math.pi)
    strength = rng.uniform(0.1, 0.35)
    light = 1.0 + strength * ((xx - 0.5) * math.cos(light_angle) + (yy - 0.5) * math.sin(light_angle)) * 2
    soft = ndimage.gaussian_filter(face, sigma=size / 14.0, mode="constant")
    edge = 1.0 - 0.3 * face * np.clip(1.0 - soft, 0, 1)
    fg = fg * (light * edge)[..., None] * rng.uniform(0.9, 1.1)

    image = fg * a + _background(rng, size) * (1.0 - a)
    image = image * (1.0 + rng.normal(0, 0.03, 3))   # white balance
    image = image + rng.normal(0, 1.5, image.shape)   # a little sensor noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_face(index: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """The face for (seed, index) as uint8 (size, size, 3); the same arguments always give the same image.
    Every part draws from one generator in a fixed order, so the order of the calls below is the data set."""
    if size < 8:
        raise ValueError(f"size must be at least 8, not {size}")
    if index < 0 or seed < 0:
        raise ValueError("index and seed must be non-negative")
    rng = np.random.default_rng([VERSION, seed, index])
    cv = _Canvas(size * SUPERSAMPLE)
    f = _look(rng)
    _draw_head(cv, rng, f)
    beard = _draw_beard(cv, rng, f)
    light_side = rng.choice([-1.0, 1.0])
    _draw_nose(cv, rng, f, light_side)
    ew, eh = _draw_eyes(cv, rng, f)
    _draw_lips(cv, rng, f, beard)
    _draw_hair(cv, rng, f, back=False)  # over the forehead
    if rng.random() < 0.2:
        _draw_glasses(cv, rng, f.ex, f.ey, ew, eh, f.fw, f.cx)
    return _photograph(cv, rng, f, size, light_side)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

def face_jobs(out_dir: Path, count: int, heldout: int) -> list[tuple[Path, int]]:
    """(path, index) of every face of the data set: train/ from 0, heldout/ from HELDOUT_START."""
    jobs = [(out_dir / "train" / f"face_{i:05d}.png", i) for i in range(count)]
    jobs += [(out_dir / "heldout" / f"face_{i:05d}.png", HELDOUT_START + i) for i in range(heldout)]
    return jobs


def _write(job) -> str:
    path, index, seed, size = job
    utils.save_png(path, render_face(index, seed, size))
    return str(path)


def _check_manifest(out_dir: Path, seed: int, size: int) -> None:
    wanted = {"generator": "make_faces.py", "version": VERSION, "seed": seed, "size": size}
    path = out_dir / MANIFEST
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            found = None
        if found != wanted:
            shown = ", ".join(f"{k}={found.get(k)}" for k in ("version", "seed", "size")) if isinstance(found, dict) else "unreadable"
            raise utils.UserError(f"{out_dir} already holds faces made with other settings ({path.name}: {shown}); "
                                  f"use another folder, or delete it, for --seed {seed} --size {size}")
        return
    utils.save_json(path, wanted)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out_dir", help="output folder (gets train/ and heldout/)")
    parser.add_argument("--count", type=int, default=2000, help="training images")
    parser.add_argument("--heldout", type=int, default=64, help="held-out images (disjoint indices)")
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--seed", type=int, default=0, help="data set seed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.count < 0 or args.heldout < 0:
        parser.error("--count and --heldout must be >= 0")
    if args.count > HELDOUT_START:
        parser.error(f"--count must be at most {HELDOUT_START}")
    if args.size < 8:
        parser.error("--size must be at least 8")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    out_dir = Path(args.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise utils.UserError(f"cannot create {out_dir}: {error.strerror or error}")
    _check_manifest(out_dir, args.seed, args.size)
    for part, count in (("train", args.count), ("heldout", args.heldout)):
        if count:
            utils.save_json(out_dir / part / FRAMING_FILE, {**FRAMING, "size": args.size})
    jobs = face_jobs(out_dir, args.count, args.heldout)
    todo = [(path, index, args.seed, args.size) for path, index in jobs if not path.exists()]
    skipped = len(jobs) - len(todo)
    try:
        if todo:
            bar = tqdm(total=len(todo), desc="Drawing faces", unit="img", disable=args.quiet)
            workers = min(args.workers, len(todo))
            if workers == 1:
                for job in todo:
                    _write(job)
                    bar.update()
            else:
                import multiprocessing
                chunk = max(1, min(32, len(todo) // (workers * 4)))
                with multiprocessing.Pool(workers) as pool:
                    for _ in pool.imap_unordered(_write, todo, chunksize=chunk):
                        bar.update()
            bar.close()
    except OSError as error:
        raise utils.UserError(f"cannot write faces to {out_dir}: {error.strerror or error}")
    print(f"{len(todo)} faces written, {skipped} already there: "
          f"{args.count} in {out_dir / 'train'}, {args.heldout} in {out_dir / 'heldout'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
