"""The ghostcomplete command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess

import pytest
from support import REPO, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

SAMPLE = REPO / "examples" / "sample_project"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [server_executable(), *args], capture_output=True, text=True, timeout=50, check=False
    )


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("ghostcomplete ")
    assert "serve" in run("--help").stdout


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["complete"],
        ["complete", "nofile"],
        ["complete", "a.py:x:1"],
        ["complete", "a.py:0:1"],
        ["serve", "--tcp", "nohostport"],
    ],
)
def test_bad_arguments_one_line_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_complete_uses_open_files(tmp_path) -> None:
    target = tmp_path / "inventory.py"
    text = (SAMPLE / "inventory.py").read_text()
    text += "\n    def replace_supplier(self, supplier: Supplier) -> None:\n        self.sup"
    target.write_text(text)
    lines = text.split("\n")
    location = f"{target}:{len(lines)}:{len(lines[-1]) + 1}"
    result = run("complete", location, "--open", str(SAMPLE / "models.py"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pliers[supplier.name] = supplier\n"


def test_complete_takes_settings_from_a_json_file(tmp_path) -> None:
    """The same request as above, under settings read from a file: turned off it says
    nothing; an onnx backend is loaded from the path the file names; bad values exit 2."""
    target = tmp_path / "shelf.py"
    target.write_text(
        "class Shelf:\n    def add_supplier(self, supplier: Supplier) -> None:\n        self.sup"
    )
    location = f"{target}:3:17"
    opened = ["--open", str(SAMPLE / "inventory.py")]
    assert run("complete", location, *opened).returncode == 0
    off = tmp_path / "off.json"
    off.write_text(json.dumps({"completion": {"enabled": False}}))
    result = run("complete", location, *opened, "--settings", str(off))
    assert result.returncode == 1 and "no suggestion" in result.stderr
    missing = tmp_path / "onnx.json"
    onnx = {"kind": "onnx", "onnx": {"path": str(tmp_path / "no-model")}}
    missing.write_text(json.dumps({"backend": onnx}))
    result = run("complete", location, *opened, "--settings", str(missing))
    assert result.returncode == 2 and "no model file" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"completion": {"timeoutMs": "soon"}}))
    result = run("complete", location, "--settings", str(bad))
    assert result.returncode == 2 and "completion.timeoutMs" in result.stderr
    result = run("complete", location, "--settings", str(tmp_path / "absent.json"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_complete_with_nothing_to_say_exits_1(tmp_path) -> None:
    target = tmp_path / "empty.py"
    target.write_text("unique_identifier_here = ")
    result = run("complete", f"{target}:1:26")
    assert result.returncode == 1
    assert "no suggestion" in result.stderr


def test_complete_unreadable_file_exit_2(tmp_path) -> None:
    result = run("complete", f"{tmp_path / 'missing.py'}:1:1")
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_readme_example_runs_as_shown(tmp_path) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- readme-example:", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    expected = "\n".join(line for line in block.splitlines() if not line.startswith("$ "))
    script = "\n".join(commands).replace("/tmp/shelf.py", str(tmp_path / "shelf.py"))
    script = script.replace("ghostcomplete ", f"{server_executable()} ", 1)
    script = script.replace("\n" + "ghostcomplete ", f"\n{server_executable()} ")
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=50, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected.strip()


def test_serve_over_tcp() -> None:
    import json
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([server_executable(), "serve", "--tcp", f"127.0.0.1:{port}"])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "server never listened"
                time.sleep(0.1)
        with connection:
            body = json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
            ).encode()
            connection.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            header, _, rest = data.partition(b"\r\n\r\n")
            length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += connection.recv(65536)
            answer = json.loads(rest[:length])
        assert "inlineCompletionProvider" in answer["result"]["capabilities"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_model_subcommands() -> None:
    measured = run("model", "measure", "--help")
    assert measured.returncode == 0 and "--path" in measured.stdout
    assert run("model", "bogus").returncode == 2
