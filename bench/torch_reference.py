#!/usr/bin/env python3
"""The same DCGAN training step (or completion iteration) in PyTorch, as a speed reference.

    python bench/torch_reference.py [--batch_size 64] [--steps 10] [--complete] [--precision bfloat16]
                                    [--gf_dim 64] [--df_dim 64] [--image_size 64]

Not a dependency of the project: run it with a Python that has torch installed
(bench_train.py --torch_python PATH runs it for you, in its own process, with no TensorFlow
process beside it). PyTorch's best CPU configuration, as a PyTorch user would pick it:
channels-last tensors and weights, and with --precision bfloat16 torch.autocast("cpu",
torch.bfloat16) (weights, optimiser and losses stay float32). Same architecture, losses,
Adam (lr 0.0002, betas 0.5/0.999, eps 1e-8) and update order: one D update, then two
G updates with the same z. With --complete: one iteration of the article's completion
(G and D in inference mode, contextual L1 + 0.1 x perceptual loss, gradient with respect to z
only, the momentum update, clip), as bench_complete.py --torch_python runs it. Prints a JSON
object on its last line.
"""
import argparse
import contextlib
import json
import time

import torch
from torch import nn


def generator(z_dim: int = 100, gf: int = 64, size: int = 64) -> nn.Module:
    """The article's layout: from (size/16)^2 x gf*8 through four 5x5 stride-2 transposed convs."""
    def up(cin, cout, last=False):
        layers = [nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)]
        return layers + ([nn.Tanh()] if last else [nn.BatchNorm2d(cout, momentum=0.1, eps=1e-5), nn.ReLU()])
    start = size // 16
    return nn.Sequential(nn.Linear(z_dim, gf * 8 * start * start), nn.Unflatten(1, (gf * 8, start, start)),
                         nn.BatchNorm2d(gf * 8, momentum=0.1, eps=1e-5), nn.ReLU(),
                         *up(gf * 8, gf * 4), *up(gf * 4, gf * 2), *up(gf * 2, gf), *up(gf, 3, last=True))


def discriminator(df: int = 64, size: int = 64) -> nn.Module:
    def down(cin, cout, norm=True):
        return [nn.Conv2d(cin, cout, 5, stride=2, padding=2)] + \
            ([nn.BatchNorm2d(cout, momentum=0.1, eps=1e-5)] if norm else []) + [nn.LeakyReLU(0.2)]
    return nn.Sequential(*down(3, df, norm=False), *down(df, df * 2), *down(df * 2, df * 4), *down(df * 4, df * 8),
                         nn.Flatten(), nn.Linear(df * 8 * (size // 16) ** 2, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gf_dim", type=int, default=64, help="G's width (the article's 64)")
    parser.add_argument("--df_dim", type=int, default=64, help="D's width")
    parser.add_argument("--image_size", type=int, default=64, help="a power of two >= 16")
    parser.add_argument("--complete", action="store_true", help="time completion iterations instead")
    parser.add_argument("--precision", choices=("off", "float16", "bfloat16"), default="off",
                        help="float16, bfloat16: torch.autocast on the CPU in that type (off: float32)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = generator(gf=args.gf_dim, size=args.image_size).to(memory_format=torch.channels_last)
    D = discriminator(df=args.df_dim, size=args.image_size).to(memory_format=torch.channels_last)
    autocast = contextlib.nullcontext() if args.precision == "off" else \
        torch.autocast("cpu", dtype=getattr(torch, args.precision))
    g_optim = torch.optim.Adam(G.parameters(), lr=0.0002, betas=(0.5, 0.999), eps=1e-8)
    d_optim = torch.optim.Adam(D.parameters(), lr=0.0002, betas=(0.5, 0.999), eps=1e-8)
    bce = nn.BCEWithLogitsLoss()
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size) * 2 - 1
    images = images.contiguous(memory_format=torch.channels_last)
    ones, zeros = torch.ones(args.batch_size, 1), torch.zeros(args.batch_size, 1)

    def train_step():
        z = torch.rand(args.batch_size, 100) * 2 - 1
        d_optim.zero_grad()
        with autocast:
            d_loss = bce(D(images).float(), ones) + bce(D(G(z).detach()).float(), zeros)  # real, fake apart
        d_loss.backward()
        d_optim.step()
        for _ in range(2):
            g_optim.zero_grad()
            with autocast:
                g_loss = bce(D(G(z)).float(), ones)
            g_loss.backward()
            g_optim.step()
        return d_loss.item() + g_loss.item()

    step = completion_iteration(G, D, images, autocast) if args.complete else train_step
    for _ in range(2):
        step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    steps_per_s = args.steps / (time.perf_counter() - start)
    key, rate = ("torch_iterations_per_s", steps_per_s) if args.complete else \
        ("torch_images_per_s", steps_per_s * args.batch_size)
    print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(),
                      "torch_precision": args.precision, "torch_layout": "channels_last", key: round(rate, 3)}))


def completion_iteration(G, D, images, autocast, lam=0.1, lr=0.01, momentum=0.9):
    """One completion iteration for the whole batch, center mask."""
    G.eval(), D.eval()
    for p in list(G.parameters()) + list(D.parameters()):
        p.requires_grad_(False)
    size = images.shape[-1]
    mask = torch.ones(1, 3, size, size)
    mask[:, :, size // 4:size * 3 // 4, size // 4:size * 3 // 4] = 0
    mask = mask.contiguous(memory_format=torch.channels_last)
    z = (torch.rand(images.shape[0], 100) * 2 - 1).requires_grad_(True)
    state = {"z": z, "v": torch.zeros_like(z)}

    def iteration():
        z = state["z"]
        with autocast:
            fake = G(z)
            logits = D(fake)
        fake, logits = fake.float(), logits.float()
        contextual = (mask * fake - mask * images).abs().flatten(1).sum(1)
        perceptual = nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits),
                                                                    reduction="none")[:, 0]
        (grad,) = torch.autograd.grad((contextual + lam * perceptual).sum(), z)
        with torch.no_grad():
            v_prev = state["v"]
            state["v"] = momentum * v_prev - lr * grad
            state["z"] = (z - momentum * v_prev + (1 + momentum) * state["v"]).clamp(-1, 1).requires_grad_(True)
        return 0.0
    return iteration


if __name__ == "__main__":
    main()
