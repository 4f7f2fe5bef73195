"""Content exclusion and secret redaction."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ghostcomplete.context.exclusion import DEFAULT_EXCLUDE, ContentExclusion
from ghostcomplete.ranker.redaction import REDACTED, redact

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("/w/app/.env", True),
        ("/w/app/.env.production", True),
        ("/w/app/certs/server.pem", True),
        ("/w/app/tls.key", True),
        ("/home/u/.ssh/id_rsa", True),
        ("/home/u/.ssh/id_ed25519.pub", True),
        ("/w/app/store.p12", True),
        ("/w/app/secrets/db.py", True),
        ("/w/app/config/secrets/deep/x.py", True),
        ("/w/app/main.py", False),
        ("/w/app/environment.py", False),
        ("/w/app/keyboard.py", False),
    ],
)
def test_default_patterns(path: str, excluded: bool) -> None:
    rules = ContentExclusion(DEFAULT_EXCLUDE, respect_gitignore=False, roots=[Path("/w/app")])
    assert (rules.reason(Path(path).as_uri()) is not None) is excluded


def test_non_file_uris_are_not_excluded() -> None:
    assert ContentExclusion().reason("untitled:Untitled-1") is None


def test_gitignore_rules_nest_and_negate(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg" / "generated").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("*.log\nbuild/\ngenerated/\n")
    (repo / "pkg" / ".gitignore").write_text("!keep.log\nlocal_*.py\n")
    files = {
        "app.py": False,
        "debug.log": True,
        "build/out.py": True,
        "pkg/keep.log": False,
        "pkg/other.log": True,
        "pkg/local_settings.py": True,
        "pkg/generated/schema.py": True,
        "pkg/module.py": False,
    }
    rules = ContentExclusion((), respect_gitignore=True, roots=[repo])
    for relative, ignored in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
        assert (rules.reason(path.as_uri()) is not None) is ignored, relative
        check = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", relative])
        assert (check.returncode == 0) is ignored, f"git disagrees about {relative}"


def test_gitignore_outside_a_repository_does_not_apply(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.py\n")
    rules = ContentExclusion((), respect_gitignore=True)
    assert rules.reason((tmp_path / "a.py").as_uri()) is None


@pytest.mark.parametrize(
    "secret",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a" * 36,
        "sk-proj-" + "A1b2" * 8,
        "xoxb-1234567890-abcdefghij",
        "AIza" + "B" * 35,
        "sk_live_" + "9" * 24,
    ],
)
def test_redact_known_token_shapes(secret: str) -> None:
    text, count = redact(f"client = make_client('{secret}')\n")
    assert secret not in text and REDACTED in text and count == 1


def test_redact_private_key_and_assigned_secrets() -> None:
    source = (
        "KEY = '''-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----'''\n"
        'db_password = "hunter2hunter2"\n'
        'settings = {"api_key": "0123456789abcdef"}\n'
        "timeout = 30\n"
    )
    text, count = redact(source)
    assert "MIIEow" not in text and "hunter2hunter2" not in text
    assert "0123456789abcdef" not in text
    assert 'db_password = "<redacted>"' in text and "timeout = 30" in text
    assert count == 3


def test_redact_leaves_ordinary_code_alone() -> None:
    code = "def tokenize(text):\n    token = next(tokens)\n    return token\n"
    assert redact(code) == (code, 0)
