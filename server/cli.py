"""The ``ghostcomplete`` command: serve, complete, bench, stats."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn, cast

from ghostcomplete.backends import BackendError, build_backend, choose_backend
from ghostcomplete.completion.pipeline import CompletionRequest, Pipeline
from ghostcomplete.completion.settings import resolve
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.languages import language_of_path
from ghostcomplete.context.positions import utf16_length


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _version() -> str:
    from ghostcomplete.server.state import VERSION

    return VERSION


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ghostcomplete",
        description="Copilot-style inline completions for any LSP editor, on your machine.",
    )
    parser.add_argument("--version", action="version", version=f"ghostcomplete {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="run the language server (LSP over stdio)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.add_argument("--log-file", metavar="PATH", help="write the server log here")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")

    from ghostcomplete.modelserver.service import add_serve_model_parser

    add_serve_model_parser(commands)

    complete = commands.add_parser(
        "complete", help="print the suggestion at FILE:LINE:COL (1-based) and exit"
    )
    complete.add_argument("location", metavar="FILE:LINE:COL")
    complete.add_argument(
        "--open",
        metavar="FILE",
        action="append",
        default=[],
        help="another file open in the editor (most recent first); repeatable",
    )
    complete.add_argument("--all", action="store_true", help="print every candidate")
    from ghostcomplete.bench.cli import settings_argument

    complete.add_argument(
        "--settings",
        metavar="FILE.json",
        type=settings_argument,
        default={},
        help="settings as in initializationOptions (camelCase JSON: FILE.json, @FILE or "
        "inline), e.g. a backend.onnx model to run",
    )
    complete.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say on stderr which backend answers (what auto chose) and where each suggestion "
        "came from",
    )

    from ghostcomplete.bench.cli import add_bench_parser

    add_bench_parser(commands)
    from ghostcomplete.telemetry.cli import add_stats_parser

    add_stats_parser(commands)
    model = commands.add_parser(
        "model",
        help="local models: import a GGUF or Hugging Face folder, pull from the catalogue, "
        "list what is installed, measure speed, train the built-in model",
    )
    model.add_argument("action", choices=tuple(MODEL_ACTIONS))
    model.add_argument("arguments", nargs=argparse.REMAINDER, help="passed on (see --help)")
    return parser


# ``ghostcomplete model ACTION ...``: each action is a module in model/ with its own flags.
MODEL_ACTIONS = {
    "import": "importer",
    "pull": "pull",
    "list": "listing",
    "measure": "measure",
    "train": "train",
}


def _model(args: argparse.Namespace) -> int:
    module_name = MODEL_ACTIONS[args.action]
    try:
        module = importlib.import_module(f"ghostcomplete.model.{module_name}")
    except ImportError as error:
        extra = "train" if args.action == "train" else "convert"
        print(
            f"ghostcomplete: model {args.action} needs the [{extra}] extra ({error})",
            file=sys.stderr,
        )
        return 2
    return int(module.main(args.arguments) or 0)


def _parse_location(parser: argparse.ArgumentParser, location: str) -> tuple[Path, int, int]:
    path_text, _, rest = location.rpartition(":")
    path_text2, _, line_text = path_text.rpartition(":")
    if not path_text2 or not line_text.isdigit() or not rest.isdigit():
        parser.error(f"expected FILE:LINE:COL with 1-based numbers, got {location!r}")
    line, column = int(line_text), int(rest)
    if line < 1 or column < 1:
        parser.error(f"LINE and COL are 1-based, got {location!r}")
    return Path(path_text2), line, column


def _read(parser: argparse.ArgumentParser, path: Path) -> DocumentSnapshot:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        parser.error(f"cannot read {path}: {error.strerror or error}")
    return DocumentSnapshot(path.resolve().as_uri(), language_of_path(str(path)), text)


def _complete(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    path, line, column = _parse_location(parser, args.location)
    document = _read(parser, path)
    neighbours = [_read(parser, Path(other)) for other in args.open]
    settings, _ = resolve(args.settings)  # --settings was checked when it was parsed
    try:
        chosen = choose_backend(settings.backend, settings.deadline_ms)
        pipeline = Pipeline(build_backend(chosen.settings), settings)
    except BackendError as error:
        print(f"ghostcomplete: {error}", file=sys.stderr)
        return 2
    if args.verbose:
        described = getattr(pipeline.backend, "description", None)
        shown = chosen.summary if settings.backend.kind == "auto" else described or chosen.summary
        print(f"ghostcomplete: backend: {shown}", file=sys.stderr)
    # Columns count characters as an editor shows them; LSP wants UTF-16 units.
    lines = document.text.split("\n")
    if line > len(lines) or column > len(lines[line - 1]) + 1:
        print(f"ghostcomplete: {args.location} is outside {path}", file=sys.stderr)
        return 2
    prefix_of_line = lines[line - 1][: column - 1]
    character = utf16_length(prefix_of_line)
    request = CompletionRequest(document, line - 1, character, neighbours)
    result = asyncio.run(pipeline.complete(request))
    if not result.texts:
        print(
            f"ghostcomplete: no suggestion ({result.skipped or 'nothing found'})", file=sys.stderr
        )
        return 1
    shown = range(len(result.texts) if args.all else 1)
    for index in shown:
        print(result.texts[index])
        if args.verbose:
            origin = result.origins[index] if index < len(result.origins) else ""
            print(f"ghostcomplete: suggestion {index + 1} from {origin or '?'}", file=sys.stderr)
    return 0


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        filename=args.log_file,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ghostcomplete.server.lsp import server

    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            parser.error(f"--tcp expects HOST:PORT, got {args.tcp!r}")
        server.start_tcp(host, int(port))
    else:
        from ghostcomplete.server.wire import ChunkedReads

        # pygls reads a body with one read(Content-Length): bounded chunks, not one allocation.
        server.start_io(stdin=cast(BinaryIO, ChunkedReads(sys.stdin.buffer)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(parser, args)
    if args.command == "complete":
        return _complete(parser, args)
    if args.command == "serve-model":
        from ghostcomplete.modelserver.service import run_serve_model

        return run_serve_model(parser, args)
    if args.command == "bench":
        from ghostcomplete.bench.cli import run_bench

        return run_bench(parser, args)
    if args.command == "stats":
        from ghostcomplete.telemetry.cli import run_stats

        return run_stats(parser, args)
    if args.command == "model":
        return _model(args)
    parser.error(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
