"""A loopback Hugging Face Hub for ``ghostcomplete model pull``'s tests, and the tiny model it
serves.

It answers what huggingface_hub asks of a model repository: the model-info API
(``GET /api/models/{repo}/revision/{rev}?blobs=true``: the commit and each file's size, git
blob id and LFS sha256) and ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with the headers the
client reads (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size``,
``Content-Length``) and ranged ``GET``s (``206`` + ``Content-Range``) for resumed transfers.
Errors carry ``X-Error-Code`` as the real hub's do. A test can make it serve corrupted bytes,
cut the first transfer of a file half-way, or answer a repository as gated or missing, and
reads back every request it got.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "onnx" / "tiny-qwen2-instruct"


def tiny_qwen2_folder(folder: Path, seed: int = 0) -> Path:
    """A Hugging Face folder of a tiny Qwen2 (2 layers, hidden 64, 512 tokens): config.json
    and the byte-level BPE tokenizer with FIM tokens of the test fixture, random weights
    written with safetensors, a LICENSE."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIXTURE / name, folder / name)
    config = json.loads((folder / "config.json").read_text())
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = hidden // heads
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    tensors = {"model.embed_tokens.weight": weight(config["vocab_size"], hidden)}
    for layer in range(config["num_hidden_layers"]):
        at = f"model.layers.{layer}"
        tensors |= {
            f"{at}.self_attn.q_proj.weight": weight(heads * head_dim, hidden),
            f"{at}.self_attn.q_proj.bias": weight(heads * head_dim),
            f"{at}.self_attn.k_proj.weight": weight(kv_heads * head_dim, hidden),
            f"{at}.self_attn.k_proj.bias": weight(kv_heads * head_dim),
            f"{at}.self_attn.v_proj.weight": weight(kv_heads * head_dim, hidden),
            f"{at}.self_attn.v_proj.bias": weight(kv_heads * head_dim),
            f"{at}.self_attn.o_proj.weight": weight(hidden, heads * head_dim),
            f"{at}.mlp.gate_proj.weight": weight(inner, hidden),
            f"{at}.mlp.up_proj.weight": weight(inner, hidden),
            f"{at}.mlp.down_proj.weight": weight(hidden, inner),
            f"{at}.input_layernorm.weight": np.ones(hidden, np.float32),
            f"{at}.post_attention_layernorm.weight": np.ones(hidden, np.float32),
        }
    tensors["model.norm.weight"] = np.ones(hidden, np.float32)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "generation_config.json").write_text('{"eos_token_id": 0}\n')
    (folder / "LICENSE").write_text("Test weights: no rights reserved.\n")
    return folder


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    lfs: frozenset[str]  # which files are in LFS (listed with a sha256)
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    refs: tuple[str, ...] = ("main",)
    # What the repository answers with instead of itself: "gated" or "missing".
    refuse: str | None = None
    # Files whose bytes are served altered (same size): what the listing says is not what comes.
    corrupt: set[str] = field(default_factory=set)
    # Files whose first GET is cut half-way through its body.
    cut_once: set[str] = field(default_factory=set)

    @classmethod
    def from_folder(cls, folder: Path, **options: object) -> FakeRepo:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        lfs = frozenset(n for n in files if n.endswith(".safetensors"))
        return cls(files, lfs, **options)  # type: ignore[arg-type]


@dataclass
class Request:
    method: str
    path: str
    range: str | None


class FakeHub:
    """``with FakeHub({"Org/name": FakeRepo(...)}) as hub:`` serves on ``hub.url``."""

    def __init__(self, repos: dict[str, FakeRepo]) -> None:
        self.repos = repos
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def transfers(self, name: str) -> list[Request]:
        """The GETs of file ``name`` (any repository)."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + name)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                hub._answer(self, "GET")

            def do_HEAD(self) -> None:
                hub._answer(self, "HEAD")

        return Handler

    def _answer(self, http: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(http.path).path
        with self._lock:
            self.requests.append(Request(method, path, http.headers.get("Range")))
        info = re.fullmatch(r"/api/models/(.+)/revision/([^/]+)", path)
        if info and method == "GET":
            self._model_info(http, unquote(info[1]), unquote(info[2]))
            return
        resolve = re.fullmatch(r"/(.+?/.+?)/resolve/([^/]+)/(.+)", path)
        if resolve:
            self._file(http, method, unquote(resolve[1]), unquote(resolve[2]), unquote(resolve[3]))
            return
        self._error(http, 404, None)

    def _repo(self, http: BaseHTTPRequestHandler, repo_id: str, revision: str) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None or repo.refuse == "missing":
            self._error(http, 401 if repo is None else 404, "RepoNotFound")
            return None
        if repo.refuse == "gated":
            self._error(http, 403, "GatedRepo")
            return None
        if revision not in (*repo.refs, repo.commit):
            self._error(http, 404, "RevisionNotFound", repo.commit)
            return None
        return repo

    def _model_info(self, http: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        repo = self._repo(http, repo_id, revision)
        if repo is None:
            return
        siblings = []
        for name, data in repo.files.items():
            sibling: dict[str, object] = {"rfilename": name, "size": len(data)}
            if name in repo.lfs:
                digest = hashlib.sha256(data).hexdigest()
                pointer = (
                    "version https://git-lfs.github.com/spec/v1\n"
                    f"oid sha256:{digest}\nsize {len(data)}\n"
                ).encode()
                sibling["blobId"] = git_blob_id(pointer)
                sibling["lfs"] = {
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "pointerSize": len(pointer),
                }
            else:
                sibling["blobId"] = git_blob_id(data)
            siblings.append(sibling)
        body = json.dumps(
            {"id": repo_id, "sha": repo.commit, "private": False, "siblings": siblings}
        ).encode()
        http.send_response(200)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)

    def _file(
        self, http: BaseHTTPRequestHandler, method: str, repo_id: str, revision: str, name: str
    ) -> None:
        repo = self._repo(http, repo_id, revision)
        if repo is None:
            return
        data = repo.files.get(name)
        if data is None:
            self._error(http, 404, "EntryNotFound", repo.commit)
            return
        etag = hashlib.sha256(data).hexdigest() if name in repo.lfs else git_blob_id(data)
        if name in repo.corrupt:
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        start = 0
        wanted = http.headers.get("Range")
        if method == "GET" and wanted:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])  # type: ignore[index]
        http.send_response(206 if start else 200)
        http.send_header("X-Repo-Commit", repo.commit)
        http.send_header("ETag", f'"{etag}"')
        if name in repo.lfs:
            http.send_header("X-Linked-Etag", f'"{etag}"')
            http.send_header("X-Linked-Size", str(len(data)))
        http.send_header("Accept-Ranges", "bytes")
        if start:
            http.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        http.send_header("Content-Length", str(len(data) - start))
        http.end_headers()
        if method == "HEAD":
            return
        body = data[start:]
        if name in repo.cut_once:
            repo.cut_once.discard(name)
            http.wfile.write(body[: len(body) // 2])
            http.wfile.flush()
            http.close_connection = True
            http.connection.shutdown(2)  # the peer sees the body end early
            return
        http.wfile.write(body)

    @staticmethod
    def _error(
        http: BaseHTTPRequestHandler, status: int, code: str | None, commit: str | None = None
    ) -> None:
        body = json.dumps({"error": code or "not found"}).encode()
        http.send_response(status)
        if code:
            http.send_header("X-Error-Code", code)
            http.send_header("X-Error-Message", code)
        if commit:
            http.send_header("X-Repo-Commit", commit)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)
