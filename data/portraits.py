#!/usr/bin/env python3
"""The shipped model's data: artflow.ai's portraits of people, aligned to the portrait framing.

    python data/portraits.py SNAPSHOT OUT [--size 64] [--workers 2]

SNAPSHOT is a local copy of github.com/initiative-sh/artflow-portraits (45,594 JPEG portraits,
256x256, made with artflow.ai, CC BY 4.0; each file is named after its prompt and artflow id). A
portrait is kept when
1. its prompt names no non-human subject, no cartoon style and nothing unsuitable (the word lists
   below: the image is a person's face, painted or photographic);
2. dlib's frontal detector finds exactly one face, at least MIN_FACE pixels wide, whose landmarks
   have a face's proportions (mouth below the eyes by 0.8-1.5 eye distances, tilted at most 30
   degrees);
3. its portrait-framed square (framing.py's "portrait": forehead, brows and chin inside) reaches past
   the image's edge by at most MAX_OUTSIDE of its area (that part is mirrored from the image);
4. its cheeks and nose are a skin's colour, or grey (SKIN: purple, blue, green and red faces are out).
artflow.ai's mark at the bottom right is inpainted first. Kept portraits go to OUT/train or, by a hash
of the file name, OUT/heldout (HELDOUT_SHARE), as size x size PNGs with a framing.json; OUT/manifest.json
lists every portrait with its prompt and what became of it, OUT/files.csv.gz the ones used, OUT/CREDIT.md
gives the credit the licence asks for. Files already written are skipped, so a second run only redoes
the rejected ones.

`--sample DIR --count N` then writes what the project ships of the data (data/artflow): the credit,
files.csv.gz (every portrait used, by split) and heldout/, the first N held-out portraits (by name) as
portrait_000.png, ... with each one's source (sources.csv), for the tests and the quality table
(heldout128/ with --size 128: the same portraits, as the checks look at the 64x64 square at any size).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import multiprocessing
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import utils  # noqa: E402
from dcgan_completion.faces import alignment, framing  # noqa: E402

SOURCE = "https://github.com/initiative-sh/artflow-portraits"
MIN_FACE = 80          # dlib's face box, in pixels of the 256x256 portrait
CHECK_SIZE = 64        # the side of the square the checks below look at, whatever --size writes
MAX_OUTSIDE = 0.12     # the share of the framed square that may lie past the portrait's edge
HELDOUT_SHARE = 50     # one file name in 50 (by its MD5) is held out
# The median Cr and Cb (YCrCb) of the cheeks and nose (rows 36-43, columns 22-41 of a 64x64 square): skin
# lies near Cr 150, Cb 110 and grey at 128, 128; outside these ranges 2% of the faces that passed 1-3 were,
# by a look at a hundred of them, painted purple, blue, green or red.
SKIN = {"cr": (125, 180), "cb": (70, 135)}
MARK = (slice(236, None), slice(182, None))  # artflow.ai's mark, bottom right of the 256x256 portraits
FILES_USED = "files.csv.gz"  # the kept portraits' list, by split

# Prompt words (lower case, whole words of the file name) that leave a portrait out.
NON_HUMAN = set("""
orc orcs goblin goblins zombie zombies alien aliens robot robots cyborg android droid skeleton skull skulls
demon demons devil dragon dragons dragonborn cat cats kitten dog dogs puppy wolf werewolf fox monkey ape gorilla
squirrel snake lizard frog toad bear lion tiger pig horse bird owl raven ogre troll trollface shrek gnome gnomes
undead ghost ghoul monster creature beast reptile insect moth mothlike tiefling horns horned hulk frankenstein
pepe avocado chewbacca yoda minion spongebob vader darth mask masked helmet lich mummy golem elemental fish shark
octopus cthulhu tentacles kobold minotaur centaur satyr pumpkin potato banana cheese pokemon pikachu rat mouse
rabbit bunny deer cow goat duck chicken penguin elephant panda koala sloth hamster unicorn zebra giraffe turtle
crocodile spider bug beetle kraken slime tree plant mech machine automaton xenomorph giger beksinski gollum
grinch thanos groot venom deadpool spiderman batman superhero cyclops squid bone bones skeletal
""".split())
STYLISED = set("""
pixar disney anime manga cartoon cartoonish caricature comic comics chibi animated simpson simpsons lego doll
puppet muppet funko claymation emoji pixel clown statue sculpture marble trollface rick morty
""".split())
UNSUITABLE = set("""
sexy nude naked nsfw topless lingerie bikini porn erotic seductive succubus boobs breasts busty hitler nazi kkk
gore gory bloody blood corpse decapitated dead murdered suicide
""".split())
# Words that tell a prompt's subject and style, only counted for the manifest's summary.
WOMEN = set("""woman women girl girls female lady princess queen witch goddess she her sorceress mermaid actress
mother mom grandmother daughter sister wife empress duchess maiden nun heroine tomboy bride""".split())
MEN = set("""man men boy boys male guy king prince lord he his him beard bearded moustache mustache goatee father
dad grandfather son brother husband emperor duke gentleman monk sir mr""".split())
PHOTOGRAPHIC = set("""photo photograph photography photographic photorealistic realistic hyperrealistic mugshot hd
4k 8k cinematic""".split())
PAINTED = set("""painted painting paintings oil watercolor watercolour drawing drawn charcoal sketch impressionist
inpressionist expressionist illustration illustrated acrylic canvas gouache ink pastel renaissance baroque""".split())

CREDIT = f"""# Credit

The portraits were made with [artflow.ai](https://artflow.ai/) and are licensed by artflow.ai under the
[Creative Commons Attribution 4.0 International licence](https://creativecommons.org/licenses/by/4.0/)
(CC BY 4.0; artflow.ai's FAQ: "All images are licensed under CC BY"). They were collected, converted
from WEBP to JPEG and named after their prompts by {SOURCE}.

Changes: selected by data/portraits.py (prompt words, dlib's face detector and landmarks, skin colour),
artflow.ai's mark inpainted, each face aligned by a similarity transform of its eyes and mouth, cropped and resized
to a square PNG (64x64 in heldout/, 128x128 in heldout128/). artflow.ai's terms of service:
https://artflow.ai/about/#terms. No warranty is given by the licensor or by this project; the licence's
disclaimer applies.
"""


# ----------------------------------------------------------------------------
# One portrait
# ----------------------------------------------------------------------------

def prompt_of(path: Path) -> tuple[str, str]:
    """(prompt, artflow id) from a file name `[prompt]-[id].jpg`."""
    match = re.fullmatch(r"(.*)-(\d+)", path.stem)
    return (match.group(1), match.group(2)) if match else (path.stem, "")


def words_of(prompt: str) -> set[str]:
    return set(prompt.lower().split("-"))


def refused_word(prompt: str) -> str | None:
    """The first word that leaves this prompt out, as 'list: word', or None."""
    words = words_of(prompt)
    for name, listed in (("non-human", NON_HUMAN), ("stylised", STYLISED), ("unsuitable", UNSUITABLE)):
        hit = sorted(words & listed)
        if hit:
            return f"{name}: {hit[0]}"
    return None


def tags(prompt: str) -> dict:
    """Who and what style the prompt names, by word (women/men/unknown; photographic/painted/unknown)."""
    words = words_of(prompt)
    woman, man = bool(words & WOMEN), bool(words & MEN)
    photo, painted = bool(words & PHOTOGRAPHIC), bool(words & PAINTED)
    return {"person": "woman" if woman and not man else "man" if man and not woman else "unknown",
            "style": "photographic" if photo and not painted else "painted" if painted and not photo else "unknown"}


def is_heldout(name: str) -> bool:
    return int(hashlib.md5(name.encode()).hexdigest()[:8], 16) % HELDOUT_SHARE == 0


def face_shape_problem(landmarks: np.ndarray) -> str | None:
    """Why these 68 landmarks are not a frontal face's, or None."""
    left, right, mouth = framing.centres(landmarks)
    across = right - left
    distance = float(np.hypot(*across))
    tilt = abs(np.degrees(np.arctan2(across[1], across[0])))
    down = float(across[0] * (mouth - left)[1] - across[1] * (mouth - left)[0]) / distance  # below the eye line
    if tilt > 30:
        return f"tilted {tilt:.0f} degrees"
    if not 0.8 <= down / distance <= 1.5:
        return f"mouth {down / distance:.2f} eye distances below the eyes"
    return None


def outside_share(matrix: np.ndarray, size: int, shape: tuple[int, int]) -> float:
    """The share of the framed square whose pixels lie past the portrait's edge."""
    inside = cv2.warpAffine(np.ones(shape, np.uint8), matrix, (size, size), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return 1.0 - float(inside.mean())


_models: dict = {}


def init_worker() -> None:
    cv2.setNumThreads(1)  # the parallelism comes from the worker processes
    _models["detector"], _models["predictor"] = alignment.load_models(alignment.default_predictor())


def align_one(job: tuple[str, str, int]) -> tuple[str, str]:
    """(file name, outcome: 'kept' or why not) for one portrait, writing its square to target."""
    source, target, size = job
    name = Path(source).name
    try:
        rgb = utils.read_rgb(source)
    except utils.ImageError as error:
        return name, f"unreadable: {error}"
    faces = alignment.find_faces(rgb, _models["detector"], upsample=0)
    if len(faces) != 1:
        return name, f"{len(faces)} faces found"
    if faces[0].width() < MIN_FACE:
        return name, f"face {faces[0].width()} px wide"
    landmarks = alignment.find_landmarks(rgb, faces[0], _models["predictor"])
    problem = face_shape_problem(landmarks)
    if problem:
        return name, problem
    # The checks look at the CHECK_SIZE square whatever the size written, so every size keeps the same portraits.
    unmarked_rgb = unmarked(rgb)
    check = framing.matrix(landmarks, CHECK_SIZE, framing.portrait(CHECK_SIZE))
    share = outside_share(check, CHECK_SIZE, rgb.shape[:2])
    if share > MAX_OUTSIDE:
        return name, f"{share:.0%} of the square past the edge"
    problem = skin_problem(alignment.cut_face(unmarked_rgb, check, CHECK_SIZE, cv2.BORDER_REFLECT_101))
    if problem:
        return name, problem
    matrix = framing.matrix(landmarks, size, framing.portrait(size))
    utils.save_png(target, alignment.cut_face(unmarked_rgb, matrix, size, cv2.BORDER_REFLECT_101))
    return name, "kept"


def skin_problem(square: np.ndarray) -> str | None:
    """Why the face's cheeks and nose (RGB square of any size) are not a skin's colour, or None."""
    side = square.shape[0]
    patch = square[round(side * 36 / 64):round(side * 44 / 64), round(side * 22 / 64):round(side * 42 / 64)]
    _, cr, cb = np.median(cv2.cvtColor(patch, cv2.COLOR_RGB2YCrCb).reshape(-1, 3), axis=0)
    if not (SKIN["cr"][0] <= cr <= SKIN["cr"][1] and SKIN["cb"][0] <= cb <= SKIN["cb"][1]):
        return f"skin colour Cr {cr:.0f} Cb {cb:.0f}"
    return None


def unmarked(rgb: np.ndarray) -> np.ndarray:
    """The portrait with artflow.ai's mark (bottom right) inpainted from its surroundings."""
    if rgb.shape[:2] != (256, 256):
        return rgb
    hole = np.zeros(rgb.shape[:2], np.uint8)
    hole[MARK] = 1
    return cv2.inpaint(rgb, hole, 5, cv2.INPAINT_TELEA)


# ----------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------

def select(snapshot: Path, out: Path, size: int, workers: int) -> dict:
    """Every portrait's outcome; kept ones written to out/train or out/heldout. Returns the manifest."""
    sources = sorted((snapshot / "images").glob("*/*.jpg"), key=lambda path: path.name)
    if not sources:
        raise utils.UserError(f"{snapshot}: no images/*/*.jpg (a copy of {SOURCE} is expected)")
    for split in ("train", "heldout"):
        utils.output_folder(out / split, "output folder")
        utils.save_json(out / split / framing.FRAMING_FILE, framing.portrait(size))
    outcomes, jobs = {}, []
    for source in sources:
        prompt, _ = prompt_of(source)
        target = out / ("heldout" if is_heldout(source.name) else "train") / f"{source.stem}.png"
        refused = refused_word(prompt)
        if refused:
            outcomes[source.name] = f"prompt ({refused})"
        elif target.exists():
            outcomes[source.name] = "kept"
        else:
            jobs.append((str(source), str(target), size))
    with multiprocessing.Pool(workers, initializer=init_worker) as pool:
        for name, outcome in tqdm(pool.imap_unordered(align_one, jobs, chunksize=16), total=len(jobs),
                                  unit="portrait", desc="Aligning"):
            outcomes[name] = outcome
    return manifest(sources, outcomes, size)


def category(outcome: str) -> str:
    """An outcome without its numbers: 'prompt (non-human: orc)' -> 'prompt: non-human', '2 faces found' -> ..."""
    if outcome.startswith("prompt ("):
        return "prompt: " + outcome[len("prompt ("):].split(":")[0]
    return re.sub(r"\d+(\.\d+)?%?", "N", outcome.split(":")[0])


def manifest(sources: list[Path], outcomes: dict, size: int) -> dict:
    entries, counts, kept_tags = [], Counter(), Counter()
    for source in sources:
        prompt, artflow_id = prompt_of(source)
        outcome = outcomes[source.name]
        split = ("heldout" if is_heldout(source.name) else "train") if outcome == "kept" else None
        entries.append({"file": f"images/{source.parent.name}/{source.name}", "artflow_id": artflow_id,
                        "prompt": prompt.replace("-", " "), "outcome": outcome, "split": split})
        counts[split or category(outcome)] += 1
        if split:
            for key, value in tags(prompt).items():
                kept_tags[f"{key}: {value}"] += 1
    return {"source": SOURCE, "licence": "CC BY 4.0, artflow.ai", "size": size, "framing": framing.portrait(size),
            "portraits": len(sources), "counts": dict(counts.most_common()),
            "kept_by_prompt_words": dict(sorted(kept_tags.items())), "files": entries}


def files_used(record: dict) -> bytes:
    """The kept portraits as gzipped CSV lines `split,file` (the snapshot's paths)."""
    lines = ["split,file"] + [f"{entry['split']},{entry['file']}" for entry in record["files"] if entry["split"]]
    return gzip.compress(("\n".join(lines) + "\n").encode(), 9, mtime=0)


def sample_folder(size: int) -> str:
    """Where --sample puts the held-out portraits of this size: heldout/ (64x64, the first), heldout128/, ..."""
    return "heldout" if size == CHECK_SIZE else f"heldout{size}"


def sample(out: Path, folder: Path, count: int, size: int) -> list[Path]:
    """What the project ships of the data: folder/CREDIT.md, folder/files.csv.gz (every portrait used) and
    folder/sample_folder(size): the first `count` held-out portraits (by name) as portrait_000.png, ...,
    with framing.json and sources.csv (each copy's artflow id, prompt and source file). Every size keeps
    the same portraits, so portrait_000.png is one face at each size."""
    chosen = sorted((out / "heldout").glob("*.png"))[:count]
    if len(chosen) < count:
        raise utils.UserError(f"{out / 'heldout'} holds {len(chosen)} portraits, fewer than {count}")
    heldout = utils.output_folder(folder / sample_folder(size), "sample folder")
    rows = ["file,artflow_id,prompt,source"]
    for index, path in enumerate(chosen):
        name = f"portrait_{index:03d}.png"
        shutil.copyfile(path, heldout / name)
        prompt, artflow_id = prompt_of(path)
        rows.append(f'{name},{artflow_id},"{prompt.replace("-", " ")}",{SOURCE}/blob/main/images/'
                    f"{artflow_id[-2:]}/{path.stem}.jpg")
    (heldout / "sources.csv").write_text("\n".join(rows) + "\n")
    shutil.copyfile(out / "heldout" / framing.FRAMING_FILE, heldout / framing.FRAMING_FILE)
    for name in ("CREDIT.md", FILES_USED):
        shutil.copyfile(out / name, folder / name)
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", help=f"a local copy of {SOURCE}")
    parser.add_argument("out", help="train/, heldout/, manifest.json and CREDIT.md go here")
    parser.add_argument("--size", type=utils.positive_int, default=64,
                        help="side of the squares (default: %(default)s)")
    parser.add_argument("--workers", type=utils.positive_int, default=multiprocessing.cpu_count(),
                        help="parallel processes (default: the CPU count)")
    parser.add_argument("--sample", default=None, help="then copy the first --count held-out portraits here")
    parser.add_argument("--count", type=utils.positive_int, default=96,
                        help="how many for --sample (default: %(default)s)")
    return parser.parse_args(argv)


@utils.expected_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    snapshot, out = Path(args.snapshot), Path(args.out)
    utils.input_folder(snapshot, "snapshot folder")
    if args.sample:
        # writable, before the long work
        utils.output_folder(Path(args.sample) / sample_folder(args.size), "sample folder")
    record = select(snapshot, out, args.size, args.workers)
    utils.save_json(out / "manifest.json", record)
    (out / "CREDIT.md").write_text(CREDIT)
    (out / FILES_USED).write_bytes(files_used(record))
    print(f"{record['portraits']} portraits: " + ", ".join(f"{v} {k}" for k, v in record["counts"].items()))
    print("kept, by prompt words: " + ", ".join(f"{v} {k}" for k, v in record["kept_by_prompt_words"].items()))
    if args.sample:
        chosen = sample(out, Path(args.sample), args.count, args.size)
        print(f"{len(chosen)} held-out portraits copied to {args.sample}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
