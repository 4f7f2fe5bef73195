"""``ghostcomplete bench acceptance|latency|context|soak|edit``: arguments, and one function that
runs each."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ghostcomplete.backends import KINDS as BACKENDS
from ghostcomplete.bench.corpus import SPLITS, CorpusError, default_cache, load_repos
from ghostcomplete.bench.tasks import KINDS as TASK_KINDS
from ghostcomplete.completion.settings import resolve, settings_layer

_DEFAULT_BACKEND = "lookup"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small offline run (standard-library subset) that ends within 60 s",
    )
    parser.add_argument(
        "--repo",
        metavar="PATH",
        type=Path,
        action="append",
        default=[],
        help="benchmark this directory instead of the pinned corpus; repeatable",
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        default=[],
        help="only this project of the corpus (e.g. click, stdlib/json); repeatable",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="the corpus's development projects (tune on these), its test projects (report "
        "on these) or both (default)",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=_DEFAULT_BACKEND, help="server backend"
    )
    parser.add_argument(
        "--settings",
        metavar="JSON",
        type=settings_argument,
        default={},
        help="extra server settings (camelCase JSON, merged into initializationOptions; "
        "inline, @FILE or FILE.json)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the task/typing draw")
    parser.add_argument(
        "--out", metavar="DIR", type=Path, default=Path("bench-results"), help="result folder"
    )
    parser.add_argument(
        "--cache",
        metavar="DIR",
        type=Path,
        default=None,
        help="download cache (default $GHOSTCOMPLETE_BENCH_CACHE or ~/.cache/ghostcomplete/bench)",
    )


def settings_argument(text: str) -> dict[str, Any]:
    """``--settings``: inline JSON, ``@FILE`` or FILE (completion.settings_layer), checked
    as the server checks it. The server would answer a rejected value with a warning and go
    on with the default, so a run would measure settings nobody asked for: refuse it here."""
    try:
        layer = settings_layer(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    _, problems = resolve(layer)
    if problems:
        raise argparse.ArgumentTypeError("; ".join(problems))
    return layer


def add_bench_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="run the acceptance or latency benchmark against the real server"
    )
    kinds = bench.add_subparsers(dest="bench_command", required=True, parser_class=type(bench))
    acceptance = kinds.add_parser(
        "acceptance", help="cut holes in real code, ask the server, score the suggestions"
    )
    _common(acceptance)
    acceptance.add_argument(
        "--context",
        choices=("none", "copilot", "default"),
        action="append",
        default=[],
        help="cross-file context setting to run; repeatable (default: all three)",
    )
    acceptance.add_argument(
        "--tasks", type=int, default=None, help="tasks per kind per repository (default 30)"
    )
    acceptance.add_argument(
        "--kind",
        choices=TASK_KINDS,
        action="append",
        default=[],
        help="only tasks of this kind (repeatable; default all); a kind's draw does not "
        "depend on the others, so --kind api gives the api tasks of a full run",
    )
    acceptance.add_argument(
        "--llama-server",
        metavar="MODEL",
        default=None,
        help="start llama-server (`make peers`) on 127.0.0.1 with MODEL (a catalogue name, "
        "e.g. qwen2.5-coder-0.5b, or a .gguf file), run the http backend against it, stop it",
    )
    acceptance.add_argument(
        "--llama-api",
        choices=("openai", "llamacpp"),
        default="openai",
        help="with --llama-server: openai sends our rendered Qwen prompt to /v1/completions "
        "(what the onnx backend gives the model); llamacpp sends the parts to /infill",
    )
    acceptance.add_argument(
        "--llama-threads", type=int, default=2, help="with --llama-server: its --threads"
    )
    _add_context_parser(kinds)
    _add_soak_parser(kinds)
    _add_edit_parser(kinds)
    latency = kinds.add_parser(
        "latency", help="replay typing of real files and time every keystroke's answer"
    )
    _common(latency)
    latency.add_argument("--files", type=int, default=None, help="files typed (default 12)")
    latency.add_argument(
        "--chars", type=int, default=None, help="characters typed per file (default 300)"
    )
    latency.add_argument(
        "--http-delay-ms",
        type=int,
        default=None,
        help="with --backend http: delay added by the loopback model server",
    )


def _add_context_parser(kinds: Any) -> None:
    context = kinds.add_parser(
        "context",
        help="time context gathering, ranking and packing in the server (20 files x 2,000 lines)",
    )
    context.add_argument(
        "--mode",
        choices=("none", "copilot", "ranked", "bm25", "imports"),
        action="append",
        default=[],
        help="context method to time; repeatable (default: none, copilot, ranked)",
    )
    context.add_argument("--samples", type=int, default=300, help="completions per method")
    context.add_argument(
        "--dense",
        metavar="FOLDER",
        help="also time ranked with dense retrieval on, with the embedding model in FOLDER",
    )
    context.add_argument("--seed", type=int, default=1, help="seed of the cursor draw")


def _add_soak_parser(kinds: Any) -> None:
    from ghostcomplete.bench import soak

    parser = kinds.add_parser(
        "soak", help="10,000 completions and a 1,000-request burst: memory, p99, backlog"
    )
    soak.add_arguments(parser)


def _add_edit_parser(kinds: Any) -> None:
    from ghostcomplete.bench.edit_bench import DEFAULT_TIMEOUT_S
    from ghostcomplete.bench.edit_tasks import KINDS, TASKS_FILE

    edit = kinds.add_parser(
        "edit",
        help="edit requests on pinned third-party code through the server, checked mechanically",
    )
    edit.add_argument(
        "--settings",
        metavar="JSON|FILE",
        type=settings_argument,
        default={},
        help="server settings (camelCase JSON, or a file holding it), e.g. "
        '\'{"backend": {"kind": "http", "http": {"url": "http://127.0.0.1:8080/v1"}}}\'',
    )
    edit.add_argument("--backend", choices=BACKENDS, default=None, help="backend.kind")
    edit.add_argument("--split", choices=SPLITS, default="all", help="the projects' side")
    edit.add_argument("--tasks", type=int, default=None, help="at most this many (all kinds)")
    edit.add_argument("--kind", choices=KINDS, action="append", default=[], help="repeatable")
    edit.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds per edit (edit.timeoutMs; default {DEFAULT_TIMEOUT_S:.0f})",
    )
    edit.add_argument("--json", type=Path, default=None, help="also write the results here")
    edit.add_argument(
        "--task-file", type=Path, default=TASKS_FILE, help="default: bench/edit_tasks.toml"
    )
    edit.add_argument("--cache", metavar="DIR", type=Path, default=None, help="corpus cache")


def _run_edit(args: argparse.Namespace) -> int:
    from ghostcomplete.bench import report
    from ghostcomplete.bench.edit_bench import CannotEdit, interleaved, markdown, run
    from ghostcomplete.bench.edit_tasks import TaskFileError, load_tasks

    started = time.monotonic()
    try:
        tasks = [
            task
            for task in load_tasks(args.task_file)
            if args.split in ("all", task.split) and (not args.kind or task.kind in args.kind)
        ]
        tasks = interleaved(tasks, args.tasks)
        if not tasks:
            raise TaskFileError("no task matches --split and --kind")
        projects = sorted({task.project for task in tasks})
        repos = load_repos(
            quick=False, paths=[], cache=args.cache or default_cache(), only=projects
        )
        settings = dict(args.settings)
        if args.backend:
            settings["backend"] = {**settings.get("backend", {}), "kind": args.backend}
        data: dict[str, Any] = {**report.header(["bench", *sys.argv[2:]]), "benchmark": "edit"}
        data["split"] = args.split
        data["server_settings"] = settings
        data["corpus"] = [_describe(repo) for repo in repos]
        data.update(run(tasks, {repo.name: repo.root for repo in repos}, settings, args.timeout))
    except (TaskFileError, CorpusError) as error:
        print(f"ghostcomplete bench edit: {error}", file=sys.stderr)
        return 1
    except CannotEdit as error:
        print(
            "ghostcomplete bench edit: the server cannot edit with these settings, so no task "
            f"was scored:\n  {error}",
            file=sys.stderr,
        )
        return 2
    data["wall_s"] = round(time.monotonic() - started, 1)
    print(markdown(data), end="")
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _run_context(args: argparse.Namespace) -> int:
    from ghostcomplete.bench import context_speed

    data = context_speed.run(
        args.mode or list(context_speed.MODES), args.samples, args.seed, args.dense
    )
    print(context_speed.markdown(data), end="")
    return 0


def run_bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.bench_command == "context":
        return _run_context(args)
    if args.bench_command == "edit":
        return _run_edit(args)
    if args.bench_command == "soak":
        from ghostcomplete.bench import soak

        return soak.run_from(args)
    argv = ["bench", *sys.argv[2:]] if len(sys.argv) > 2 else ["bench", args.bench_command]
    cache = args.cache or default_cache()
    started = time.monotonic()
    try:
        repos = load_repos(
            quick=args.quick, paths=args.repo, cache=cache, only=args.only, split=args.split
        )
    except CorpusError as error:
        print(f"ghostcomplete bench: {error}", file=sys.stderr)
        return 1
    if not repos:
        print("ghostcomplete bench: no repositories selected", file=sys.stderr)
        return 1
    from ghostcomplete.bench import report

    if args.bench_command == "acceptance":
        from ghostcomplete.bench import acceptance
        from ghostcomplete.bench.tasks import make_tasks

        per_kind = args.tasks or (6 if args.quick else 30)
        contexts = args.context or list(acceptance.CONTEXTS)
        kinds = tuple(kind for kind in TASK_KINDS if not args.kind or kind in args.kind)
        tasks = [task for repo in repos for task in make_tasks(repo, per_kind, args.seed, kinds)]
        data: dict[str, Any] = {**report.header(argv), "benchmark": "acceptance"}
        data["corpus"] = [_describe(repo) for repo in repos]
        data["settings"] = {
            "seed": args.seed,
            "tasks_per_kind": per_kind,
            "kinds": list(kinds),
            "quick": args.quick,
            "split": args.split,
        }
        data["server_settings"] = args.settings
        if args.llama_server is None:
            data.update(acceptance.run(repos, tasks, contexts, args.backend, args.settings))
        elif args.backend not in ("http", _DEFAULT_BACKEND):
            parser.error("--llama-server runs the http backend: leave out --backend")
        else:
            from ghostcomplete.bench.peers_llamacpp import LlamaServerFailed, PeerMissing

            try:
                data.update(_through_llama_server(args, repos, tasks, contexts))
            except (PeerMissing, LlamaServerFailed) as error:
                print(f"ghostcomplete bench: {error}", file=sys.stderr)
                return 1
    else:
        from ghostcomplete.bench import latency

        if args.http_delay_ms is not None and args.backend != "http":
            parser.error("--http-delay-ms needs --backend http")
        files = args.files or (2 if args.quick else 12)
        chars = args.chars or (50 if args.quick else 300)
        data = {**report.header(argv), "benchmark": "latency"}
        data["corpus"] = [_describe(repo) for repo in repos]
        data["settings"] = {
            "seed": args.seed,
            "files": files,
            "chars": chars,
            "split": args.split,
        }
        data["server_settings"] = args.settings
        data.update(
            latency.run(
                repos, files, chars, args.seed, args.backend, args.http_delay_ms, args.settings
            )
        )
    data["wall_s"] = round(time.monotonic() - started, 1)
    report.print_paths(report.write(args.bench_command, data, args.out))
    return 0


def _through_llama_server(
    args: argparse.Namespace, repos: list[Any], tasks: list[Any], contexts: list[str]
) -> dict[str, Any]:
    """``bench acceptance --llama-server``: the http backend against a llama-server started
    for the run on 127.0.0.1 and stopped after it."""
    from ghostcomplete.bench import acceptance
    from ghostcomplete.bench.peers_llamacpp import LlamaServer, gguf_of, http_backend, peer_binary

    peer_binary("llama-server")  # said first when both it and the model are missing
    with LlamaServer(gguf_of(args.llama_server), threads=args.llama_threads) as server:
        # The run's settings apply, but the started server is the backend: the --settings of
        # an onnx run of the same model can be passed as they are.
        backend = {"kind": "http", "http": http_backend(server.base, args.llama_api)}
        settings = acceptance.merged(args.settings, {"backend": backend})
        results = acceptance.run(repos, tasks, contexts, "http", settings)
        described = {"model": args.llama_server, "api": args.llama_api, **server.describe()}
    return {"server_settings": settings, "llama_server": described, **results}


def _describe(repo: Any) -> dict[str, Any]:
    return {
        "name": repo.name,
        "version": repo.version,
        "license": repo.license,
        "source": repo.source,
        "split": repo.split,
        "files": len(repo.files),
    }
