"""`pyimg upscale`: placeholder until its stream lands (replace this whole file)."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("upscale", help="(not built yet)")
    parser.set_defaults(run=lambda args: print("pyimg upscale: not built yet") or 1)
