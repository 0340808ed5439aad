"""`pyimg train`: placeholder until its stream lands (replace this whole file)."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="(not built yet)")
    parser.set_defaults(run=lambda args: print("pyimg train: not built yet") or 1)
