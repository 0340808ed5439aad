"""`pyimg train RECIPE [key=value ...]`: train a zoo model from a recipe (see
``pyimg.train.train``)."""

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model from a recipe",
        description="Train a zoo model from a recipe: a shipped name (espcn, srresnet, "
        "unet, pix2pix, ...; --list shows them) or a YAML file, with key=value overrides "
        "(dots for nested keys: optimizer.lr=1e-4, data.train=path/to/images). A run "
        "folder that holds a checkpoint is resumed. Under torchrun every process runs "
        "this command.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("recipe", nargs="?", help="recipe name or YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings that replace the recipe's")
    parser.add_argument("--run-dir", help="run folder (default: runs/<recipe>[-<overrides>])")
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help="resume from this checkpoint file or run folder")
    parser.add_argument("--list", action="store_true", help="list the shipped recipes")
    parser.add_argument("--show", action="store_true",
                        help="print the full settings (recipe + overrides) and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.parse_known_args = _positionals_first(parser.parse_known_args)
    parser.set_defaults(run=run)


def _positionals_first(parse):
    """argparse reads positionals in one run; move the recipe and the key=value overrides
    before the options so that they may also follow them (``--run-dir r scale=2``)."""
    with_value = ("--run-dir", "--resume")

    def parse_known_args(args=None, namespace=None):
        args = list(args or [])
        front, back = [], []
        while args:
            token = args.pop(0)
            if token in with_value and args:
                back += [token, args.pop(0)]
            else:
                (back if token.startswith("-") else front).append(token)
        return parse(front + back, namespace)

    return parse_known_args


def run(args) -> int:
    from pyimg.train import config as recipes

    if args.list:
        for name in recipes.list_recipes():
            print(name)
        return 0
    if args.recipe is None:
        raise ValueError("give a recipe (pyimg train --list shows the shipped ones)")
    if args.show:
        print(recipes.dump_config(recipes.load_config(args.recipe, args.overrides)), end="")
        return 0
    from pyimg.train import train

    result = train(args.recipe, args.overrides, run_dir=args.run_dir, resume=args.resume,
                   progress=not args.no_progress)
    if result.weights is None:  # not the main process of a torchrun job
        return 0
    summary = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(f"{result.run_dir}: step {result.step}" + (f"; {summary}" if summary else "")
          + f"; weights {result.weights}")
    return 0
