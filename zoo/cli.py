"""The ``zoo`` command (also ``python -m zoo``).

``fit``, ``validate``, ``test`` and ``predict`` are LightningCLI's, with its stacked configs and
dotted overrides. The rest are the zoo's own:

    zoo list [PATTERN]                     registered weight sets (registry only, instant)
    zoo info NAME                          everything the registry holds on one
    zoo download NAME                      fill the Hugging Face cache, on a machine with network
    zoo export CKPT --out DIR              a training checkpoint becomes an export folder
    zoo publish DIR --repo-id ORG/NAME     upload an export folder (``--dry-run`` to check)
    zoo cache import DIR --repo-id ORG/NAME  file an export folder into the HF cache layout
    zoo evaluate NAME                      the entry's paper metric next to the paper's number
    zoo showcase --out DIR                 load every entry's weights, run each, print a table

Errors the user can fix (a missing file, an unknown name, a malformed recipe) print one line and
exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo import registry
from zoo._format import number, table
from zoo.errors import ZooError

__all__ = ["main"]

_LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _LIGHTNING_COMMANDS:
        return _lightning(argv, None if from_command_line else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args) or 0
    except (ZooError, OSError) as error:
        message = str(error).strip() or type(error).__name__
        print(f"zoo {args.command}: error: {message}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo",
        description="A PyTorch Lightning model zoo of ICLR 2023 papers for the sciences.",
        epilog="Training: zoo {fit,validate,test,predict} --config recipes/ENTRY/TASK.yaml "
        "(LightningCLI; `zoo fit --help` lists every option).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _LIGHTNING_COMMANDS:
        commands.add_parser(name, help=f"LightningCLI {name} (`zoo {name} --help`)")

    cmd = commands.add_parser("list", help="list registered weight sets")
    cmd.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, such as 'lamp*'")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_list)

    cmd = commands.add_parser("info", help="show what the registry holds on a weight set")
    cmd.add_argument("name")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_info)

    cmd = commands.add_parser("download", help="fill the Hugging Face cache with a weight set")
    cmd.add_argument("name")
    cmd.add_argument("--revision", help="a branch, tag or commit instead of the pinned one")
    cmd.add_argument("--cache-dir", type=Path)
    cmd.set_defaults(handler=_download)

    cmd = commands.add_parser("export", help="turn a training checkpoint into an export folder")
    cmd.add_argument("checkpoint", type=Path, help="a Lightning .ckpt written by `zoo fit`")
    cmd.add_argument("--out", type=Path, required=True, help="the export folder to create")
    cmd.add_argument("--name", help="name.tag to publish it as (default: the folder's name)")
    cmd.add_argument("--metrics", type=Path, help="JSON list of measured metrics to record")
    cmd.add_argument(
        "--no-evaluate",
        action="store_true",
        help="do not run the module's evaluate() on its recipe's data",
    )
    cmd.add_argument("--force", action="store_true", help="replace an existing folder")
    cmd.set_defaults(handler=_export)

    cmd = commands.add_parser("publish", help="upload an export folder to the Hugging Face Hub")
    cmd.add_argument("folder", type=Path)
    cmd.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    cmd.add_argument("--tag", help="tag the new commit, such as v1")
    cmd.add_argument("--private", action="store_true")
    cmd.add_argument("--dry-run", action="store_true", help="check and list, upload nothing")
    cmd.set_defaults(handler=_publish)

    cmd = commands.add_parser("cache", help="manage the Hugging Face cache")
    cache = cmd.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    sub = cache.add_parser("import", help="file an export folder into the cache layout")
    sub.add_argument("folder", type=Path)
    sub.add_argument("--repo-id", required=True, help="ORG/NAME it belongs to")
    sub.add_argument("--revision", default="main", help="branch name or 40-digit commit")
    sub.add_argument("--tag", action="append", default=[], help="also point this tag at it")
    sub.add_argument("--cache-dir", type=Path)
    sub.set_defaults(handler=_cache_import)

    cmd = commands.add_parser("evaluate", help="run an entry's paper metric on its eval data")
    cmd.add_argument("name")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_evaluate)

    cmd = commands.add_parser("showcase", help="run every entry's pretrained weights")
    cmd.add_argument("--out", type=Path, default=Path("showcase"), help="folder for the plots")
    cmd.add_argument("--pattern", default="*", help="only the names matching this pattern")
    cmd.set_defaults(handler=_showcase)
    return parser


def _lightning(argv: list[str], args: list[str] | None) -> int:
    """Runs a LightningCLI subcommand; configuration errors become one line."""
    from argparse import ArgumentError

    from zoo.training import run_cli

    try:
        run_cli(args)
    except (ArgumentError, ValueError, ZooError) as error:
        if os.environ.get("ZOO_DEBUG"):
            raise
        print(
            f"zoo {argv[0]}: error: {_one_line(str(error))} (ZOO_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 2
    return 0


def _one_line(message: str) -> str:
    """The specific part of a jsonargparse error, whose messages span many lines."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    noise = ("- Expected a <class 'NoneType'>", "Given value")
    for i, line in enumerate(lines):
        if line.startswith("- Problem with given class_path"):
            detail = [rest for rest in lines[i + 1 :] if not rest.startswith(noise)]
            return " ".join([line.removeprefix("- ").rstrip(":") + ":", *detail[:2]])
    return " ".join(lines)


def _list(args: argparse.Namespace) -> None:
    names = registry.list_models(args.pattern)
    if args.json:
        print(json.dumps(names))
        return
    if not names:
        known = "no entries are registered yet" if not registry.entries() else "none match"
        print(f"no weight sets match {args.pattern!r} ({known})")
        return
    rows = []
    for name in names:
        entry, weights = registry.get(name)
        default = "*" if weights.tag == entry.default.tag else ""
        rows.append([name + default, weights.status, weights.description])
    print(table(["name (* = default)", "status", "description"], rows))


def _info(args: argparse.Namespace) -> None:
    data = registry.info(args.name)
    if args.json:
        print(json.dumps(data, indent=2))
        return
    paper = data["paper"]
    lines = [
        f"{data['name']}{'  (default tag)' if data['default'] else ''}",
        f"  {data['description']}",
        f"  paper:      {paper['title']} ({paper['venue']}, {paper['url']})",
        f"  module:     {data['module']}",
        f"  datamodule: {data['datamodule']}",
        f"  recipe:     {data['recipe']}",
        f"  hub:        {data['repo_id'] or '-'} @ {data['revision'] or '-'}",
        f"  status:     {data['status']}",
        f"  tags:       {', '.join(data['tags'])}",
    ]
    print("\n".join(lines))
    if data["metrics"]:
        rows = [
            [m["name"], m["dataset"], number(m["value"], m["unit"]), number(m["paper"], m["unit"])]
            for m in data["metrics"]
        ]
        print(table(["metric", "dataset", "ours", "paper"], rows))


def _download(args: argparse.Namespace) -> None:
    from zoo.hub import download

    print(download(args.name, revision=args.revision, cache_dir=args.cache_dir))


def _export(args: argparse.Namespace) -> None:
    from zoo.export import export_checkpoint

    metrics = _read_metrics(args.metrics) if args.metrics else None
    folder = export_checkpoint(
        args.checkpoint,
        args.out,
        name=args.name,
        metrics=metrics,
        evaluate=not args.no_evaluate,
        overwrite=args.force,
    )
    print(f"exported {folder} (reloaded strictly and probe verified)")


def _publish(args: argparse.Namespace) -> None:
    from zoo.hub import publish

    result = publish(
        args.folder, args.repo_id, tag=args.tag, private=args.private, dry_run=args.dry_run
    )
    if result.dry_run:
        print(f"dry run: would upload to {result.repo_id}: {', '.join(result.files)}")
        return
    print(f"published {result.repo_id} at commit {result.commit}")
    print(f'pin it in the registry: repo_id="{result.repo_id}", revision="{result.commit}"')


def _cache_import(args: argparse.Namespace) -> None:
    from zoo.hub import cache_import

    commit = cache_import(
        args.folder,
        args.repo_id,
        revision=args.revision,
        tags=tuple(args.tag),
        cache_dir=args.cache_dir,
    )
    print(f"imported {args.folder} as {args.repo_id} at commit {commit}")


def _evaluate(args: argparse.Namespace) -> None:
    import zoo

    entry, weights = registry.get(args.name)
    model = zoo.load(args.name)
    evaluate = getattr(model, "evaluate", None)
    if not callable(evaluate):
        raise ZooError(f"entry {entry.name!r} defines no evaluate(); see its model card")
    results = evaluate()
    if args.json:
        print(json.dumps(results, indent=2, default=float))
        return
    paper = {m.name: m.paper for m in weights.metrics}
    rows = [
        [
            r["name"],
            r.get("dataset", ""),
            number(r["value"], r.get("unit", "")),
            number(paper.get(r["name"]), r.get("unit", "")),
        ]
        for r in results
    ]
    print(table(["metric", "dataset", "ours", "paper"], rows))


def _showcase(args: argparse.Namespace) -> None:
    from zoo.showcase import run_showcase

    run_showcase(args.out, pattern=args.pattern)


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ZooError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(metrics, list) or not all(
        isinstance(m, dict) and {"name", "value"} <= m.keys() for m in metrics
    ):
        raise ZooError(f"{path} must hold a JSON list of objects with 'name' and 'value'")
    return metrics
