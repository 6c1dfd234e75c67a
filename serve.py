#!/usr/bin/env python3
"""Serve a web page and a REST API that fill the painted hole of an image with a trained DCGAN.

    python serve.py                                     # the shipped face model; open http://127.0.0.1:8080/
    python serve.py --checkpointDir checkpoint --port 8000

The page opens an aligned face (or a whole photo), lets you paint the hole, and shows the fill
as it improves; /docs describes the API. complete.py's completion flags (same names) are the
defaults of every job; the model is loaded once and stays on the device. It answers only the page
it serves (its own Host, no other site's changes); beyond loopback every request needs a token,
printed in the address at start.
"""
import argparse
import os
import re
import sys

import utils
from complete import OUTPUT_DEFAULTS, add_completion_flags, settings_from_args
from dcgan_completion import runtime


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_completion_flags(parser)  # complete.py's: --nIter, --approach, --lam, --batchSize, --seed, ...
    parser.set_defaults(mask=None, outDir=str(OUTPUT_DEFAULTS.out_dir))  # what settings_from_args reads
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=utils.non_negative_int, default=8080, help="port to listen on")
    parser.add_argument("--maxQueue", type=utils.positive_int, default=64, help="jobs waiting at most (then 429)")
    parser.add_argument("--maxJobs", type=utils.positive_int, default=256,
                        help="jobs kept at most, finished ones dropped oldest first")
    parser.add_argument("--jobTTL", type=utils.positive_float, default=3600.0,
                        help="seconds a finished job's results are kept")
    parser.add_argument("--maxMemoryMB", type=utils.positive_int, default=1024,
                        help="MiB the jobs' images and results may hold (then 503)")
    parser.add_argument("--maxUploadMB", type=utils.positive_int, default=32, help="MiB an uploaded file may have")
    parser.add_argument("--maxPixels", type=utils.positive_int, default=4096 * 4096,
                        help="pixels (width x height) an uploaded image may have")
    parser.add_argument("--maxIter", type=utils.positive_int, default=10000, help="iterations a job may ask for")
    parser.add_argument("--allowHost", action="append", default=[], metavar="NAME",
                        help="another name this server answers to in the Host header (repeatable; it always "
                             "answers to its --host, localhost and IP addresses)")
    parser.add_argument("--allowOrigin", action="append", default=[], metavar="ORIGIN",
                        help="a site (scheme://host:port) whose pages may call the API: CORS (repeatable)")
    parser.add_argument("--token", default=None,
                        help="the token every request needs (default: none on loopback, a new one printed "
                             "at start beyond it)")
    args = parser.parse_args(argv)
    if args.maskType == "full":
        parser.error("--maskType full keeps every pixel, so a job would have nothing to fill")
    if args.nIter is not None and args.nIter > args.maxIter:
        parser.error(f"--nIter {args.nIter} is over --maxIter {args.maxIter}")
    if args.token is not None and not args.token.strip():
        parser.error("--token must not be empty")
    for origin in args.allowOrigin:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            parser.error(f"--allowOrigin {origin!r}: an origin is scheme://host[:port], without a path")
    return args


@utils.expected_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    runtime.start()  # TensorFlow's environment, then TensorFlow, quietly
    settings, output = settings_from_args(args)
    from dcgan_completion.networks.storage import resolve_model_dir
    from dcgan_completion.serving.jobs import JobStore
    from dcgan_completion.serving.server import access_for, serve
    from dcgan_completion.serving.service import Defaults, Limits

    checkpoint_dir, model_line = resolve_model_dir(args.checkpointDir)
    print(model_line, flush=True)
    defaults = Defaults(settings, output.blend, args.maskType, args.centerScale, iterations_given=args.nIter is not None)
    limits = Limits(max_upload_bytes=args.maxUploadMB << 20, max_pixels=args.maxPixels, max_iter=args.maxIter)
    store = JobStore(max_jobs=args.maxJobs, max_queue=args.maxQueue, ttl=args.jobTTL,
                     max_bytes=args.maxMemoryMB << 20)
    access = access_for(args.host, args.allowHost, args.allowOrigin, args.token)
    code = serve(checkpoint_dir, defaults, args.host, args.port, args.mixed_precision, limits, store, args.xla,
                 access)
    # Everything has stopped and said so. TensorFlow's teardown at interpreter exit would take seconds
    # more (3 s on 2 CPUs), so the process ends here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
