"""`pyimg upscale`: super-resolution of videos, images, folders and raw pipes
(``pyimg.video.upscale``), and ``--sample``, the packaged clip upscaled and scored against its
truth (``pyimg.video.sample_job``)."""

import argparse
import json

EXAMPLES = """examples:
  pyimg upscale --sample                          the packaged clip, ESPCN x2, fps and PSNR
  pyimg upscale in.mp4 out.mp4 --model espcn-x2   a video (audio and subtitles copied)
  pyimg upscale photos/ big/ --model espcn-x3     a folder of images
  pyimg upscale in.mkv out.mkv --model srresnet --weights w.safetensors --tile 256
  ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | pyimg upscale - - --size 640x360 \\
      --pix-fmt rgb24 --fps 30 | ffplay -f rawvideo -pixel_format rgb24 -video_size 1280x720 -
  torchrun --nproc-per-node 2 -m pyimg upscale in.mp4 out.mp4   split at keyframes
"""


def _kwargs(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object like {\"channels\": 32}")
    return value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "upscale", help="super-resolve a video, image, folder or raw pipe",
        description="Upscale INPUT into OUTPUT with a super-resolution model. INPUT: a video "
        "(anything FFmpeg reads), an image (PNG, JPEG, TIFF, WebP), a folder of images, or - "
        "(raw frames on stdin); OUTPUT likewise (- for raw frames on stdout).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="INPUT OUTPUT",
                        help="input and output (with --sample: the output only, optional)")
    parser.add_argument("--sample", action="store_true",
                        help="upscale the packaged sample clip and print fps and PSNR (Y) "
                        "against its truth, for the model and for bicubic")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="espcn-x2",
                       help="a shipped name (espcn-x2, espcn-x3, espcn-x4), 'bicubic', a zoo "
                       "architecture with --weights, a .safetensors file with pyimg metadata, "
                       "or FILE.py:FACTORY (default: espcn-x2)")
    model.add_argument("--weights", help="safetensors weights for a zoo architecture or factory")
    model.add_argument("--model-kwargs", type=_kwargs, metavar="JSON",
                       help="constructor arguments of a zoo architecture")
    model.add_argument("--scale", type=int, help="upscaling factor (checked against the model; "
                       "the factor of 'bicubic')")
    model.add_argument("--channels", choices=("y", "rgb"),
                       help="what the model takes, when it cannot be told from the model")
    run = parser.add_argument_group("compute")
    run.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when present)")
    run.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    run.add_argument("--backend", choices=("cuda", "triton", "cpu", "torch"),
                     help="force one pyimg kernel backend")
    run.add_argument("--compile", action="store_true", help="torch.compile the model")
    run.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                     help="launch kernels one by one instead of replaying a CUDA graph")
    run.add_argument("--no-optimize", dest="optimize", action="store_false",
                     help="on the CPU, run the model as it is instead of through "
                     "pyimg.inference.optimize_for_inference (fused oneDNN convolutions)")
    run.add_argument("--batch", type=int, help="frames per model call (default: 4 on CUDA, "
                     "1 on the CPU)")
    run.add_argument("--tile", type=int, help="tile side in input pixels (default: whole "
                     "frames; on CUDA sized from free memory; halved on out-of-memory)")
    run.add_argument("--overlap", type=int, help="tile overlap in input pixels (default: the "
                     "model's receptive radius + 4, which makes tiles exact)")
    out = parser.add_argument_group("output")
    out.add_argument("--codec", help="video encoder (default: the input's codec, else the "
                     "container's)")
    out.add_argument("--crf", type=int, help="constant-quality level (default: 18 for x264)")
    out.add_argument("--bitrate", help="target bitrate instead of a CRF, like 8M")
    out.add_argument("--preset", help="encoder speed preset, like veryfast")
    out.add_argument("--pix-fmt", help="output pixel format (yuv420p, yuv420p10le, ...); for "
                     "raw input (-), the input's")
    out.add_argument("--frames", metavar="START:STOP", help="upscale only these frames")
    out.add_argument("--no-copy-streams", dest="copy_streams", action="store_false",
                     help="leave out the input's audio and subtitle streams")
    pipe = parser.add_argument_group("raw frames on stdin (INPUT -)")
    pipe.add_argument("--size", metavar="WxH", help="frame size of raw input")
    pipe.add_argument("--fps", type=float, help="the source's frame rate: the report says "
                      "whether pyimg keeps up with it")
    parser.add_argument("--report", metavar="FILE.json", help="write the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(run=run_upscale, parser=parser)


def run_upscale(args) -> int:
    options = dict(
        weights=args.weights, scale=args.scale, channels=args.channels,
        model_kwargs=args.model_kwargs, device=args.device, dtype=args.dtype,
        backend=args.backend, compile=args.compile, batch=args.batch, tile=args.tile,
        overlap=args.overlap, cuda_graphs=args.cuda_graphs, optimize=args.optimize,
        codec=args.codec, crf=args.crf,
        bitrate=args.bitrate, preset=args.preset, pix_fmt=args.pix_fmt, frames=args.frames,
        progress=not args.quiet)
    if args.sample:
        if len(args.paths) > 1:
            raise ValueError("--sample takes at most one path, the output")
        from pyimg.video.sample_job import run_sample, table

        report = run_sample(args.paths[0] if args.paths else None, args.model,
                            copy_streams=args.copy_streams, verbose=not args.quiet, **options)
        print(table(report))
    else:
        if len(args.paths) != 2:
            args.parser.error("give INPUT and OUTPUT (or --sample)")
        from pyimg.video import report as report_module
        from pyimg.video import upscale

        report = upscale(args.paths[0], args.paths[1], args.model, size=args.size,
                         fps=args.fps, copy_streams=args.copy_streams, **options)
        if not args.quiet and report is not None:
            report_module.print_summary(report)
    if args.report and report is not None:
        from pyimg.video import report as report_module

        report_module.write(report, args.report)
    return 0
