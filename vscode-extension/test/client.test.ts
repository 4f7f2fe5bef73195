// The whole extension — activate(), the real vscode-languageclient 11 and the real
// ghostcomplete server — with only VS Code itself faked (test/fakeVscode.ts: VS Code cannot
// be downloaded on these machines). The server is this repository's .venv/bin/ghostcomplete,
// found the way users' servers are found: as the workspace folder's own .venv.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import * as vscode from "vscode";

import { activate, deactivate } from "../src/extension";
import type { Controller } from "../src/controller";
import {
  fake,
  fireConfigurationChange,
  grantWorkspaceTrust,
  openDocument,
  Position,
  Range,
  Selection,
  setSetting,
  showEditor,
  Uri,
  workspace as fakeWorkspace,
  type FakeTextDocument,
} from "./fakeVscode";

const REPO = path.resolve(__dirname, "..", "..");
const SAMPLE = path.join(REPO, "examples", "sample_project");
const SERVER = path.join(REPO, ".venv", "bin", "ghostcomplete");
const TAIL = "\n    def replace_supplier(self, supplier: Supplier) -> None:\n        self.sup";
// The whole line: the place the lookup copies from matched the whole method header, so its
// " = supplier" is trusted though "] = " also goes on with "product" in the sample.
const EXPECTED = "pliers[supplier.name] = supplier";

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function provider() {
  const entry = fake.inlineProviders[fake.inlineProviders.length - 1];
  if (entry === undefined) {
    throw new Error("no inline completion provider registered");
  }
  return entry.provider as {
    provideInlineCompletionItems(document: unknown, position: unknown, context: unknown, token: unknown): Promise<unknown>;
  };
}

async function ask(document: FakeTextDocument, position: Position): Promise<vscode.InlineCompletionItem[]> {
  const source = new vscode.CancellationTokenSource();
  const answer = (await provider().provideInlineCompletionItems(
    document,
    position,
    { triggerKind: vscode.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined },
    source.token,
  )) as vscode.InlineCompletionList | vscode.InlineCompletionItem[] | undefined;
  if (answer === undefined || answer === null) {
    return [];
  }
  return Array.isArray(answer) ? answer : answer.items;
}

function endOf(document: FakeTextDocument): Position {
  return document.positionAt(document.getText().length);
}

describe.skipIf(!existsSync(SERVER))("the extension with the real server (fake VS Code)", () => {
  let controller: Controller;
  let inventory: FakeTextDocument;

  beforeAll(async () => {
    fake.reset();
    process.env["GHOSTCOMPLETE_TELEMETRY_PATH"] = path.join(mkdtempSync(path.join(os.tmpdir(), "gc-vscode-")), "t.sqlite3");
    fakeWorkspace.workspaceFolders = [{ uri: Uri.file(REPO), name: "ghostcomplete", index: 0 }];
    openDocument(Uri.file(path.join(SAMPLE, "models.py")), "python", readFileSync(path.join(SAMPLE, "models.py"), "utf8"), false);
    controller = await activate({ subscriptions: [] } as unknown as vscode.ExtensionContext);
  });

  afterAll(async () => {
    if (process.env['GC_DEBUG']) { console.log(JSON.stringify(fake.messages, null, 1), fake.statusBarMessages, fake.output('ghostcomplete')?.text); }
    await deactivate();
  });

  it("starts the workspace's own server and shows it ready", async () => {
    const log = fake.output("ghostcomplete")?.text ?? "";
    expect(log).toContain(`starting ${SERVER} serve (from workspace .venv)`);
    await until("the ready status", () => controller.statusView().summary === "ready");
    const item = fake.statusBarItems[0];
    expect(item?.text).toBe("$(sparkle) ghostcomplete");
    expect(item?.visible).toBe(true);
    expect(item?.command).toBe("ghostcomplete.showMenu");
    await until("the server's description", () => controller.statusView().tooltip.includes("backend auto: lookup"));
    expect(fake.messages).toEqual([]); // in particular no "ignored invalid settings"
  });

  it("registers the palette commands and, through the client, the server's", async () => {
    for (const id of ["ghostcomplete.editSelection", "ghostcomplete.toggleCompletions", "ghostcomplete.showStats",
      "ghostcomplete.restartServer", "ghostcomplete.showMenu", "ghostcomplete.showLog",
      "ghostcomplete.accept", "ghostcomplete.stats", "ghostcomplete.status", "ghostcomplete.edit"]) {
      expect(fake.commands.has(id), id).toBe(true);
    }
  });

  it("answers inline completions; accepting runs the item's ghostcomplete.accept", async () => {
    const text = readFileSync(path.join(SAMPLE, "inventory.py"), "utf8") + TAIL;
    inventory = openDocument(Uri.file(path.join(SAMPLE, "inventory.py")), "python", text);
    const items = await ask(inventory, endOf(inventory));
    expect(items.map((item) => item.insertText)).toContain(EXPECTED);
    const first = items[0] as vscode.InlineCompletionItem;
    expect(first.command?.command).toBe("ghostcomplete.accept");
    // VS Code runs the item's command after inserting it: here, through the client to the server.
    const accepted = await vscode.commands.executeCommand(first.command?.command as string, ...(first.command?.arguments ?? []));
    expect(accepted).toBe(true);
    const stats = (await vscode.commands.executeCommand("ghostcomplete.stats")) as Record<string, number>;
    expect(stats["accepted"]).toBe(1);
  });

  it("follows typing (incremental didChange)", async () => {
    // The accepted line, then a new method: the same line again would only be a copy of the
    // line above (which the server never suggests), but under a new header it is right.
    inventory.edit(
      new Range(endOf(inventory), endOf(inventory)),
      "pliers[supplier.name] = supplier\n\n    def update_supplier(self, supplier: Supplier) -> None:\n        self.sup",
    );
    const items = await ask(inventory, endOf(inventory));
    expect(items.map((item) => item.insertText)).toContain(EXPECTED);
    // The server's copy of the buffer is the editor's, byte for byte.
    const copy = (await vscode.commands.executeCommand("ghostcomplete.debugDocument", inventory.uri.toString())) as Record<string, unknown>;
    expect(copy).toMatchObject({
      version: inventory.version,
      length: inventory.getText().length,
      sha256: createHash("sha256").update(inventory.getText(), "utf8").digest("hex"),
    });
  });

  it("pushes changed settings: Toggle Completions turns suggestions off and on", async () => {
    await vscode.commands.executeCommand("ghostcomplete.toggleCompletions");
    expect(fake.settings.workspace.get("ghostcomplete.completion.enabled")).toBe(false);
    expect(controller.statusView().summary).toBe("off");
    await until("no suggestions", async () => (await ask(inventory, endOf(inventory))).length === 0 || undefined);
    expect(await ask(inventory, endOf(inventory))).toEqual([]);
    await vscode.commands.executeCommand("ghostcomplete.toggleCompletions");
    expect(fake.settings.workspace.get("ghostcomplete.completion.enabled")).toBe(true);
    expect((await ask(inventory, endOf(inventory))).map((item) => item.insertText)).toContain(EXPECTED);
  });

  it("shows the server's warning for a bad value, and clears it", async () => {
    setSetting("ghostcomplete.completion.maxChars", -5);
    await until("the warning status", () => controller.statusView().summary === "warning");
    expect(controller.statusView().tooltip).toContain("completion.maxChars");
    expect(fake.statusBarItems[0]?.backgroundColor?.id).toBe("statusBarItem.warningBackground");
    setSetting("ghostcomplete.completion.maxChars", undefined);
    await until("the ready status again", () => controller.statusView().summary === "ready");
  });

  it("Edit Selection… says so when nothing is selected", async () => {
    showEditor(inventory);
    await vscode.commands.executeCommand("ghostcomplete.editSelection");
    expect(fake.messages.pop()?.message).toMatch(/nothing is selected/);
    expect(fake.inputBoxes).toEqual([]);
  });

  it("Edit Selection… sends ghostcomplete.edit with the selection and the instruction", async () => {
    showEditor(inventory, new Selection(new Position(0, 0), new Position(1, 0)));
    fake.inputBoxAnswers.push("  add a docstring  ");
    const before = fake.messages.length + fake.statusBarMessages.length;
    await vscode.commands.executeCommand("ghostcomplete.editSelection");
    expect(fake.inputBoxes.pop()).toMatchObject({ title: "ghostcomplete: Edit Selection" });
    expect(fake.progress.pop()).toMatchObject({ title: "ghostcomplete: editing the selection…", cancellable: true });
    // Whatever the backend makes of it, the user hears the outcome.
    expect(fake.messages.length + fake.statusBarMessages.length).toBe(before + 1);
  });

  it("Show Acceptance Stats opens the HTML report made by the same executable", async () => {
    await vscode.commands.executeCommand("ghostcomplete.showStats");
    const panel = await until("the report", () => fake.webviewPanels[0]);
    expect(panel.title).toBe("ghostcomplete: Acceptance Stats");
    expect(panel.webview.html).toContain("ghostcomplete telemetry");
    expect(panel.webview.html).toContain("Content-Security-Policy");
    await vscode.commands.executeCommand("ghostcomplete.showStats");
    expect(fake.webviewPanels.length).toBe(1);
    expect(panel.revealed).toBe(1);
  });

  it("the status bar's menu runs the picked action", async () => {
    fake.quickPickAnswer = (items) => (items as { label: string }[]).find((item) => item.label.includes("Show Log"));
    await vscode.commands.executeCommand("ghostcomplete.showMenu");
    expect(fake.quickPicks.pop()?.options).toMatchObject({ title: "ghostcomplete: ready" });
    expect(fake.output("ghostcomplete")?.shown).toBe(true);
  });

  it("restarts the server when the backend kind changes, and shows its error", async () => {
    setSetting("ghostcomplete.backend.kind", "http"); // with no url: the server says what is missing
    await until("the error status", () => controller.statusView().summary === "error");
    await until("the new server's description", () => controller.statusView().tooltip.includes("backend http"));
    expect(fake.output("ghostcomplete")?.text).toContain("settings changed that need a restart");
    setSetting("ghostcomplete.backend.kind", undefined);
    await until("ready again", () => controller.statusView().summary === "ready" && controller.statusView().tooltip.includes("backend auto: lookup"));
    expect((await ask(inventory, endOf(inventory))).map((item) => item.insertText)).toContain(EXPECTED);
  });

  it("an untrusted workspace's own backend address is not sent until the user trusts it", async () => {
    setSetting("ghostcomplete.server.command", SERVER); // user settings: allowed in restricted mode
    await until("ready with the user's server", () => controller.statusView().summary === "ready");
    fakeWorkspace.isTrusted = false;
    // A repository's .vscode/settings.json, read in one go (one restart).
    fake.settings.workspace.set("ghostcomplete.backend.http.url", "http://127.0.0.1:9/v1"); // nothing answers there
    fake.settings.workspace.set("ghostcomplete.backend.kind", "http");
    fireConfigurationChange(["ghostcomplete.backend.http.url", "ghostcomplete.backend.kind"]);
    await until("the http backend's error", () => controller.statusView().tooltip.includes("backend http") && controller.statusView().summary === "error");
    expect(controller.statusView().tooltip).toContain("backend.http.url is not set");
    expect(fake.output("ghostcomplete")?.text).not.toContain("127.0.0.1:9/");
    grantWorkspaceTrust(); // now the workspace's url counts: the next request goes there
    await until("the workspace's address", async () => {
      if (fake.inlineProviders.length > 0) {
        await ask(inventory, endOf(inventory));
      }
      return fake.output("ghostcomplete")?.text.includes("model server at http://127.0.0.1:9/v1") || undefined;
    });
    fake.settings.workspace.delete("ghostcomplete.backend.http.url");
    fake.settings.workspace.delete("ghostcomplete.backend.kind");
    fake.settings.global.delete("ghostcomplete.server.command");
    fireConfigurationChange(["ghostcomplete.backend.http.url", "ghostcomplete.backend.kind", "ghostcomplete.server.command"]);
    await until("ready again", () => controller.statusView().summary === "ready" && controller.statusView().tooltip.includes("backend auto: lookup"));
  });

  it("a server command that does not exist leaves a stopped status and a message", async () => {
    setSetting("ghostcomplete.server.command", "/nonexistent/ghostcomplete");
    await until("the stopped status", () => controller.statusView().summary === "stopped");
    expect(fake.messages.pop()).toEqual({
      level: "error",
      message: "ghostcomplete: ghostcomplete.server.command: /nonexistent/ghostcomplete is not an executable file",
      items: ["Open Settings", "Show Log"],
    });
    expect(fake.messages.filter((message) => message.level === "error").map((message) => message.message)).not.toContainEqual(
      expect.stringContaining("/nonexistent"), // one message, not the client library's too
    );
    setSetting("ghostcomplete.server.command", undefined);
    await until("ready again", () => controller.statusView().summary === "ready");
  });
});
