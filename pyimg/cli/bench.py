"""`pyimg bench`: placeholder until its stream lands (replace this whole file)."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="(not built yet)")
    parser.set_defaults(run=lambda args: print("pyimg bench: not built yet") or 1)
