"""llama.cpp's ``llama-server`` on 127.0.0.1, for the peer tests and the peer benchmark: where
``make peers`` put the binaries and ``make model-qwen`` the GGUF, starting and stopping the
server, and what its log and ``/slots`` say."""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostcomplete.model.gguf_parts import CATALOGUE, cache_home

LLAMA_CPP_PYTHON = "0.3.36"
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


class PeerMissing(RuntimeError):
    """A peer binary or the model is not there: ``make peers`` / ``make model-qwen``."""


class LlamaServerFailed(RuntimeError):
    """llama-server exited or did not answer its health check in time (its log's end said)."""


def peer_binary(name: str) -> Path:
    """``llama-server`` or ``llama-bench``: ``$GHOSTCOMPLETE_LLAMA_SERVER`` /
    ``$GHOSTCOMPLETE_LLAMA_BENCH``, else where ``make peers`` puts it."""
    variable = "GHOSTCOMPLETE_" + name.upper().replace("-", "_")
    path = Path(
        os.environ.get(variable)
        or cache_home() / "peers" / f"llama-cpp-python-{LLAMA_CPP_PYTHON}" / "bin" / name
    )
    if not os.access(path, os.X_OK):
        raise PeerMissing(f"{path} is missing: run `make peers` (or set {variable})")
    return path


def peer_gguf() -> Path:
    """The GGUF the peers run: ``$GHOSTCOMPLETE_PEER_GGUF``, else the assembled 0.5B model."""
    path = Path(
        os.environ.get("GHOSTCOMPLETE_PEER_GGUF")
        or cache_home() / "models" / CATALOGUE[DEFAULT_MODEL].file_name
    )
    if not path.is_file():
        raise PeerMissing(
            f"{path} is missing: run `make model-qwen` (or set GHOSTCOMPLETE_PEER_GGUF)"
        )
    return path


def gguf_of(model: str) -> Path:
    """A GGUF by a name of the model catalogue (``qwen2.5-coder-0.5b``: where ``python -m
    ghostcomplete.model.gguf_parts NAME`` assembles it in the model cache) or by its path."""
    if model in CATALOGUE:
        path = cache_home() / "models" / CATALOGUE[model].file_name
        hint = f"run `python -m ghostcomplete.model.gguf_parts {model}` (or `make model-qwen`)"
    else:
        path = Path(model).expanduser()
        hint = f"name a GGUF file or a model of the catalogue ({', '.join(sorted(CATALOGUE))})"
    if not path.is_file():
        raise PeerMissing(f"{path} is missing: {hint}")
    return path


# The http backend's wire formats a llama-server speaks (backends/http/adapters.py).
LLAMA_APIS = ("openai", "llamacpp")


def http_backend(base: str, api: str) -> dict[str, Any]:
    """``backend.http`` for a llama-server at ``base``. ``openai`` sends the prompt our server
    renders in Qwen2.5-Coder's repository format to /v1/completions: the prompt the onnx
    backend gives the same model. ``llamacpp`` sends prefix, suffix and snippets to /infill,
    where llama-server writes the prompt itself (its repository is "myproject" and the current
    file "filename", whatever the workspace)."""
    if api == "openai":
        return {"api": "openai", "url": base + "/v1", "fimFamily": "qwen"}
    if api == "llamacpp":
        return {"api": "llamacpp", "url": base}
    raise ValueError(f"unknown llama-server api {api!r} (one of {', '.join(LLAMA_APIS)})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident memory (``VmHWM``), while it runs (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def run_measured(command: list[str]) -> tuple[bytes, float]:
    """Run ``command`` to its end: its standard output, and its own peak resident memory in
    MiB (``wait4``'s ``ru_maxrss``, KiB on Linux: this child's alone, read after it ends)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"failed ({process.returncode}): {' '.join(command)}")
    return output, round(usage.ru_maxrss / 1024, 1)


def prompt_reuse(log: str) -> dict[str, Any]:
    shares = [
        float(x)
        for x in re.findall(r"selected slot by LCP similarity, f_sim_best = ([0-9.]+)", log)
    ]
    fresh = len(re.findall(r"selected slot by LRU", log))
    everything = sorted(shares + [0.0] * fresh)
    return {
        "generations_started": len(everything),
        "reused_share_p50": round(statistics.median(everything), 3) if everything else None,
        "cancelled_tasks": len(re.findall(r"stop: cancel task", log)),
    }


@dataclass
class LlamaServer:
    """``llama-server`` on 127.0.0.1 with one slot, so that its state is easy to read."""

    gguf: Path
    threads: int = 2
    context: int = 8192
    extra: tuple[str, ...] = ()
    # /slots then also shows each slot's prompt and generated text (tests read them).
    debug_slots: bool = False
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> LlamaServer:
        self.port = self.port or free_port()
        command = [
            str(peer_binary("llama-server")),
            "--model", str(self.gguf),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--threads", str(self.threads),
            "--ctx-size", str(self.context),
            "--parallel", "1",
            "--slots",
            *self.extra,
        ]  # fmt: skip
        environ = dict(os.environ)
        if self.debug_slots:
            environ["LLAMA_SERVER_SLOTS_DEBUG"] = "1"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environ,
            )
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise LlamaServerFailed(f"llama-server exited: {self.log_tail()}")
            try:
                if self.get("/health").get("status") == "ok":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise LlamaServerFailed(
            f"llama-server did not come up in {timeout_s:.0f} s: {self.log_tail()}"
        )

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read() or b"{}")

    def slot(self) -> dict[str, Any]:
        """The one slot's state: ``is_processing``, ``next_token[0].n_decoded``, ..."""
        slots = self.get("/slots")
        return dict(slots[0])

    def peak_rss_mib(self) -> float | None:
        return None if self.process is None else peak_rss_mib(self.process.pid)

    def prompt_reuse(self) -> dict[str, Any]:
        """From the server's log: generations it started, and the share of each prompt its
        cache already held (``f_sim_best``: the common start with the slot's last prompt; a
        share under 0.1 shows as "selected slot by LRU", counted here as 0)."""
        return prompt_reuse(self.log_path.read_text(errors="replace"))

    def describe(self) -> dict[str, Any]:
        """What a result file keeps of this server (call while it runs: its peak memory)."""
        return {
            "gguf": self.gguf.name,
            "llama_cpp_python": LLAMA_CPP_PYTHON,
            "threads": self.threads,
            "ctx_size": self.context,
            "peak_rss_mib": self.peak_rss_mib(),
            **self.prompt_reuse(),
        }

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
