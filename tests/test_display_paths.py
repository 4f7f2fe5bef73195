"""How prompts name files: relative to the workspace folder that holds them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import server_executable

from ghostcomplete.context.display_paths import display_path, repository_name

pytestmark = pytest.mark.timeout(30)


def test_inside_a_workspace_folder_the_path_is_relative():
    root = Path("/home/alice/work/shop")
    uri = (root / "src" / "cart.py").as_uri()
    assert display_path(uri, [root]) == "src/cart.py"


def test_the_innermost_of_nested_folders_wins():
    outer, inner = Path("/home/alice/work"), Path("/home/alice/work/shop")
    uri = (inner / "cart.py").as_uri()
    assert display_path(uri, [outer, inner]) == "cart.py"
    assert display_path(uri, [inner, outer]) == "cart.py"


def test_outside_every_folder_the_path_stays_absolute():
    uri = Path("/usr/lib/python3/json/__init__.py").as_uri()
    assert display_path(uri, [Path("/home/alice/work")]) == "/usr/lib/python3/json/__init__.py"
    assert display_path(uri) == "/usr/lib/python3/json/__init__.py"


def test_a_folder_named_like_a_prefix_of_another_is_not_its_parent():
    uri = Path("/home/alice/shop-old/cart.py").as_uri()
    assert display_path(uri, [Path("/home/alice/shop")]) == "/home/alice/shop-old/cart.py"


def test_the_repository_is_the_folder_that_holds_the_file():
    shop, docs = Path("/home/alice/shop"), Path("/home/alice/docs")
    assert repository_name((docs / "guide.py").as_uri(), [shop, docs]) == "docs"
    assert repository_name((shop / "src" / "cart.py").as_uri(), [shop, docs]) == "shop"
    outer = Path("/home/alice")
    assert repository_name((shop / "cart.py").as_uri(), [outer, shop]) == "shop"
    # Outside every folder (or an untitled buffer): the first folder, as a single root gives.
    assert repository_name(Path("/tmp/x.py").as_uri(), [shop, docs]) == "shop"
    assert repository_name("untitled:Untitled-1", [shop]) == "shop"
    assert repository_name("untitled:Untitled-1") == ""


def test_percent_escapes_are_decoded_and_other_schemes_kept():
    root = Path("/home/alice/my shop")
    assert display_path((root / "ça va.py").as_uri(), [root]) == "ça va.py"
    assert display_path("untitled:Untitled-1", [root]) == "untitled:Untitled-1"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("shop")
    lsp_client.root = root  # type: ignore[attr-defined]
    lsp_client.prompts: list[str] = []  # type: ignore[attr-defined]

    @lsp_client.feature("ghostcomplete/didComplete")
    def on_complete(params: Any) -> None:
        prompt = params["prompt"] if isinstance(params, dict) else params.prompt
        lsp_client.prompts.append(prompt)  # type: ignore[attr-defined]

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=root.as_uri(),
            initialization_options={"debug": {"reportTimings": True}},
        )
    )
    yield
    await lsp_client.shutdown_session()


@pytest.mark.e2e
async def test_the_running_server_names_files_relative_to_the_workspace(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    (root / "pkg").mkdir()
    files = {
        "pkg/prices.py": "def price_with_tax(amount, rate):\n    return amount * (1 + rate)\n",
        "pkg/cart.py": "from pkg.prices import price_with_tax\n\ntotal = price_with_tax(",
    }
    for name, text in files.items():
        (root / name).write_text(text)
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem((root / name).as_uri(), "python", 1, text)
            )
        )
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
            text_document=types.TextDocumentIdentifier((root / "pkg/cart.py").as_uri()),
            position=types.Position(2, len("total = price_with_tax(")),
        )
    )
    prompts: list[str] = client.prompts  # type: ignore[attr-defined]
    await asyncio.wait_for(_until(lambda: bool(prompts)), 10)
    prompt = prompts[-1]
    assert "Path: pkg/cart.py" in prompt, prompt
    assert "from pkg/prices.py" in prompt, prompt  # the imported definition, as a snippet
    assert str(root) not in prompt, prompt


async def _until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.02)
