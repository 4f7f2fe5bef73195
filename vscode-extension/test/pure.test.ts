// The extension's pure logic: settings, server command, status bar view, report, menu,
// protocol parsing. No VS Code needed (nor faked) here.
import { describe, expect, it } from "vitest";

import { menuItems, EXTENSION_COMMANDS } from "../src/menu";
import { parseBetter, parseEditAnswer, parseStatus, shouldAskAgain } from "../src/protocol";
import { reportForWebview, statsCommand, statsSummary } from "../src/report";
import { resolveServerCommand, ServerNotFound, venvExecutable, whichOn, type CommandLookup, type ServerCommand } from "../src/serverCommand";
import {
  buildInitializationOptions,
  needsRestart,
  toggleCompletions,
  userLevelValue,
  RESTART_SETTINGS,
  RESTRICTED_SETTINGS,
} from "../src/settings";
import { presentStatus } from "../src/status";
import { buildServerOptions } from "../src/controller";
import { partialAccept } from "../src/partialAccept";
import { StderrLevels, traceRequested } from "../src/logLevels";

describe("buildInitializationOptions", () => {
  it("passes the server's sections through and drops the client-only ones", () => {
    const configuration = {
      backend: { kind: "http", http: { url: "http://127.0.0.1:8080", apiKeyEnv: "KEY" } },
      completion: { enabled: false, disabledLanguages: ["markdown"] },
      server: { command: ["/opt/python", "-m", "ghostcomplete.server.cli"], verbose: true },
      trace: { server: "verbose" },
      get: () => 1, // WorkspaceConfiguration's functions are not settings
    };
    expect(buildInitializationOptions(configuration, true)).toEqual({
      backend: { kind: "http", http: { url: "http://127.0.0.1:8080", apiKeyEnv: "KEY" } },
      completion: { enabled: false, disabledLanguages: ["markdown"] },
      workspaceTrusted: true,
    });
  });

  it("does not change its argument and copes with nothing", () => {
    const configuration = { server: { command: "x" }, telemetry: { mode: "off" } };
    buildInitializationOptions(configuration, true);
    expect(configuration.server).toEqual({ command: "x" });
    expect(buildInitializationOptions(undefined, true)).toEqual({ workspaceTrusted: true });
    expect(buildInitializationOptions([1, 2], true)).toEqual({ workspaceTrusted: true });
  });

  // What a repository's .vscode/settings.json makes of the section (merged over the user's).
  const merged = {
    backend: {
      kind: "http",
      http: {
        url: "https://evil.example",
        apiKeyEnv: "GITHUB_TOKEN",
        apiKey: "k",
        headers: { X: "y" },
        proxy: "http://evil.example:3128",
        verifyTls: false,
        model: "m",
      },
    },
    context: { exclude: [], recentFiles: 3 },
    workspaceTrusted: true, // a repository cannot vouch for itself
  };
  const user: Record<string, unknown> = {
    "backend.http.url": "https://models.example/v1",
    "backend.http.apiKeyEnv": "MY_KEY",
  };
  const defaults: Record<string, unknown> = { "backend.http.headers": {}, "backend.http.verifyTls": true, "context.exclude": [".env*"] };
  const userValue = (key: string) => userLevelValue({ globalValue: user[key], defaultValue: defaults[key] });

  it("in an untrusted workspace takes the restricted settings from user settings only", () => {
    expect(buildInitializationOptions(merged, false, userValue)).toEqual({
      backend: {
        kind: "http",
        http: { url: "https://models.example/v1", apiKeyEnv: "MY_KEY", headers: {}, verifyTls: true, model: "m" },
      },
      context: { exclude: [".env*"], recentFiles: 3 },
      workspaceTrusted: false,
    });
    expect(merged.backend.http.url).toBe("https://evil.example"); // the argument is left alone
  });

  it("is untrusted unless told otherwise", () => {
    const options = buildInitializationOptions(merged);
    expect(options["workspaceTrusted"]).toBe(false);
    expect(options["backend"]).toEqual({ kind: "http", http: { model: "m" } });
  });

  it("in a trusted workspace passes the workspace's values through", () => {
    const options = buildInitializationOptions(merged, true, userValue);
    expect(options["backend"]).toEqual(merged.backend);
    expect(options["context"]).toEqual(merged.context);
  });

  it("restricts settings that exist on the server's http backend or context", () => {
    for (const key of RESTRICTED_SETTINGS) {
      expect(key).toMatch(/^(backend\.http|context)\./);
    }
  });
});

describe("userLevelValue", () => {
  it("is the user's value, else the default, never the workspace's", () => {
    expect(userLevelValue({ globalValue: "u", workspaceValue: "w", defaultValue: "d" })).toBe("u");
    expect(userLevelValue({ workspaceValue: "w", defaultValue: "d" })).toBe("d");
    expect(userLevelValue({ globalValue: false, defaultValue: true })).toBe(false);
    expect(userLevelValue(undefined)).toBeUndefined();
  });
});

describe("needsRestart", () => {
  const changed = (...keys: string[]) => (section: string) =>
    keys.some((key) => key === section || key.startsWith(`${section}.`) || section.startsWith(`${key}.`));

  it("restarts for the command, the backend kind and what loads a model", () => {
    expect(needsRestart(changed("ghostcomplete.server.command"))).toBe(true);
    expect(needsRestart(changed("ghostcomplete.backend.kind"))).toBe(true);
    expect(needsRestart(changed("ghostcomplete.backend.onnx.path"))).toBe(true);
    expect(needsRestart(changed("ghostcomplete.backend"))).toBe(true);
  });

  it("pushes everything else to the running server", () => {
    expect(needsRestart(changed("ghostcomplete.completion.enabled"))).toBe(false);
    expect(needsRestart(changed("ghostcomplete.backend.http.url"))).toBe(false);
    expect(needsRestart(changed("ghostcomplete.backend.onnx.temperature"))).toBe(false);
    expect(needsRestart(changed("ghostcomplete.trace.server"))).toBe(false);
    expect(needsRestart(changed("editor.fontSize"))).toBe(false);
  });

  it("in an untrusted workspace restarts for the restricted settings too", () => {
    expect(needsRestart(changed("ghostcomplete.backend.http.url"), false)).toBe(true);
    expect(needsRestart(changed("ghostcomplete.context.exclude"), false)).toBe(true);
    expect(needsRestart(changed("ghostcomplete.completion.enabled"), false)).toBe(false);
  });

  it("names only settings that exist", () => {
    for (const key of RESTART_SETTINGS) {
      expect(key).toMatch(/^(server|backend)\./);
    }
  });
});

describe("toggleCompletions", () => {
  it("flips the level that decides the value", () => {
    expect(toggleCompletions({ defaultValue: true, globalValue: false, workspaceValue: true }, true)).toEqual({ value: false, level: "workspace" });
    expect(toggleCompletions({ defaultValue: true, globalValue: false }, true)).toEqual({ value: true, level: "global" });
  });

  it("with nothing set, writes the workspace when one is open, else the user settings", () => {
    expect(toggleCompletions({ defaultValue: true }, true)).toEqual({ value: false, level: "workspace" });
    expect(toggleCompletions({ defaultValue: true }, false)).toEqual({ value: false, level: "global" });
    expect(toggleCompletions(undefined, false)).toEqual({ value: false, level: "global" });
  });
});

describe("resolveServerCommand", () => {
  const lookup = (over: Partial<CommandLookup>): CommandLookup => ({
    configured: null,
    folders: ["/work/a", "/work/b"],
    trusted: true,
    platform: "linux",
    isExecutable: () => false,
    which: () => undefined,
    ...over,
  });

  it("takes the setting first: a path, or a command with arguments", () => {
    expect(resolveServerCommand(lookup({ configured: " /opt/gc/bin/ghostcomplete ", isExecutable: () => true }))).toEqual({ command: "/opt/gc/bin/ghostcomplete", args: [], source: "setting" });
    expect(resolveServerCommand(lookup({ configured: ["python3", "-m", "ghostcomplete.server.cli"], which: () => "/usr/bin/python3" })).command).toBe("/usr/bin/python3");
    expect(resolveServerCommand(lookup({ configured: ["/usr/bin/python3", "-m", "ghostcomplete.server.cli"], isExecutable: () => true }))).toEqual({
      command: "/usr/bin/python3",
      args: ["-m", "ghostcomplete.server.cli"],
      source: "setting",
    });
  });

  it("rejects a malformed setting with a message that names it", () => {
    expect(() => resolveServerCommand(lookup({ configured: ["python", 3] }))).toThrow(/ghostcomplete.server.command must be/);
    expect(() => resolveServerCommand(lookup({ configured: 42 }))).toThrow(ServerNotFound);
    expect(() => resolveServerCommand(lookup({ configured: "/opt/nothing/ghostcomplete" }))).toThrow(
      "ghostcomplete.server.command: /opt/nothing/ghostcomplete is not an executable file",
    );
    expect(() => resolveServerCommand(lookup({ configured: ["pyhton3", "-m", "x"] }))).toThrow("ghostcomplete.server.command: pyhton3 is not on PATH");
  });

  it("then the first workspace folder with .venv/bin/ghostcomplete", () => {
    const found = resolveServerCommand(lookup({ isExecutable: (file) => file === "/work/b/.venv/bin/ghostcomplete", which: () => "/usr/bin/ghostcomplete" }));
    expect(found).toEqual({ command: "/work/b/.venv/bin/ghostcomplete", args: [], source: "workspace .venv" });
  });

  it("then ghostcomplete on PATH; an untrusted workspace's .venv is never run", () => {
    const everything = { isExecutable: () => true, which: () => "/usr/local/bin/ghostcomplete" };
    expect(resolveServerCommand(lookup({ ...everything, trusted: false }))).toEqual({ command: "/usr/local/bin/ghostcomplete", args: [], source: "PATH" });
    expect(resolveServerCommand(lookup({ ...everything, folders: [] })).source).toBe("PATH");
  });

  it("says what it tried when nothing is found", () => {
    expect(() => resolveServerCommand(lookup({}))).toThrow(
      "ghostcomplete server not found: tried /work/a/.venv/bin/ghostcomplete, /work/b/.venv/bin/ghostcomplete, ghostcomplete on PATH. Install it (pip install ghostcomplete) or set ghostcomplete.server.command.",
    );
    expect(() => resolveServerCommand(lookup({ trusted: false }))).toThrow(/not trusted/);
  });

  it("knows Windows virtual environments", () => {
    expect(venvExecutable("C:\\w", "win32")).toBe("C:\\w\\.venv\\Scripts\\ghostcomplete.exe");
    expect(venvExecutable("/w", "darwin")).toBe("/w/.venv/bin/ghostcomplete");
  });

  it("whichOn looks through PATH in order", () => {
    const exists = new Set(["/b/ghostcomplete", "/c/ghostcomplete"]);
    expect(whichOn("ghostcomplete", "/a::/b:/c", "linux", (file) => exists.has(file))).toBe("/b/ghostcomplete");
    expect(whichOn("ghostcomplete", undefined, "linux", () => true)).toBeUndefined();
  });
});

describe("buildServerOptions", () => {
  it("runs `serve` over stdio without --stdio (no transport: the client would append it)", () => {
    const options = buildServerOptions({ command: "/py", args: ["-m", "ghostcomplete.server.cli"], source: "setting" }, false, "/work/a");
    expect(options).toEqual({ command: "/py", args: ["-m", "ghostcomplete.server.cli", "serve"], options: { cwd: "/work/a" } });
    expect("transport" in options).toBe(false);
    expect(buildServerOptions({ command: "gc", args: [], source: "PATH" }, true, undefined)).toEqual({ command: "gc", args: ["serve", "-v"] });
  });
});

describe("presentStatus", () => {
  const running = (kind: "Normal" | "Warning" | "Error" | "Inactive", message = "", busy = false) =>
    ({ phase: "running", status: { kind, message, busy } }) as const;

  it("maps each server status to a view", () => {
    expect(presentStatus(running("Normal"), true)).toMatchObject({ summary: "ready", text: "$(sparkle) ghostcomplete", background: undefined });
    expect(presentStatus(running("Normal", "", true), true)).toMatchObject({ summary: "working", text: "$(loading~spin) ghostcomplete" });
    expect(presentStatus(running("Error", "http backend: connection refused"), true)).toMatchObject({
      summary: "error",
      background: "statusBarItem.errorBackground",
      tooltip: expect.stringContaining("connection refused"),
    });
    expect(presentStatus(running("Warning", "invalid settings"), true)).toMatchObject({ summary: "warning", background: "statusBarItem.warningBackground" });
    expect(presentStatus(running("Inactive", "excluded by .gitignore"), true)).toMatchObject({
      summary: "disabled for this file",
      tooltip: expect.stringContaining("excluded by .gitignore"),
    });
  });

  it("shows completions turned off, but never hides an error behind it", () => {
    expect(presentStatus(running("Normal"), false).summary).toBe("off");
    expect(presentStatus(running("Error", "boom"), false).summary).toBe("error");
  });

  it("shows the client's own phases and the detail line", () => {
    expect(presentStatus({ phase: "starting" }, true).summary).toBe("starting");
    const stopped = presentStatus({ phase: "stopped", reason: "ghostcomplete server not found" }, true, "backend lookup");
    expect(stopped).toMatchObject({ summary: "stopped", background: "statusBarItem.errorBackground" });
    expect(stopped.tooltip).toContain("ghostcomplete server not found");
    expect(stopped.tooltip).toContain("backend lookup");
  });
});

describe("protocol parsing", () => {
  it("reads a status and tolerates junk", () => {
    expect(parseStatus({ kind: "Error", message: "x", busy: true })).toEqual({ kind: "Error", message: "x", busy: true });
    expect(parseStatus({ kind: "Normal" })).toEqual({ kind: "Normal", message: "", busy: false });
    expect(parseStatus({ kind: "Exploded" }).kind).toBe("Warning");
    expect(parseStatus(null).kind).toBe("Warning");
  });

  it("reads an edit answer", () => {
    expect(parseEditAnswer({ applied: true, message: "done" })).toEqual({ applied: true, message: "done" });
    expect(parseEditAnswer(null)).toEqual({ applied: false, message: "the server gave no answer" });
  });

  it("asks again for a better suggestion only where the editor still stands", () => {
    const raw = { uri: "file:///w/a.py", version: 7, position: { line: 3, character: 11 } };
    const better = parseBetter(raw);
    expect(better).toEqual({ uri: "file:///w/a.py", version: 7, line: 3, character: 11 });
    const here = { uri: "file:///w/a.py", version: 7, line: 3, character: 11 };
    expect(shouldAskAgain(better, here)).toBe(true);
    expect(shouldAskAgain(better, { ...here, version: 8 })).toBe(false); // typed since
    expect(shouldAskAgain(better, { ...here, character: 12 })).toBe(false); // cursor moved
    expect(shouldAskAgain(better, { ...here, uri: "file:///w/b.py" })).toBe(false); // another file
    expect(shouldAskAgain(better, undefined)).toBe(false); // no editor
    expect(parseBetter({ uri: "file:///w/a.py", version: "7", position: { line: 3, character: 11 } })).toBeUndefined();
    expect(parseBetter({ uri: "file:///w/a.py", version: 7 })).toBeUndefined();
    expect(parseBetter(null)).toBeUndefined();
  });
});

describe("stats report", () => {
  it("runs `stats --html` with the server's own command and database", () => {
    const server: ServerCommand = { command: "/py", args: ["-m", "ghostcomplete.server.cli"], source: "setting" };
    expect(statsCommand(server, "/tmp/r.html", null)).toEqual({ command: "/py", args: ["-m", "ghostcomplete.server.cli", "stats", "--html", "/tmp/r.html"] });
    expect(statsCommand(server, "/tmp/r.html", "/data/t.sqlite3").args.slice(-2)).toEqual(["--db", "/data/t.sqlite3"]);
  });

  it("puts a no-script CSP and light colors into the report's head", () => {
    const page = reportForWebview("<!doctype html><html><head><meta charset='utf-8'></head><body>x</body></html>");
    expect(page).toMatch(/^<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="default-src 'none'/);
    expect(page).toContain("<body>x</body>");
    expect(reportForWebview("<p>bare</p>")).toContain("<body><p>bare</p></body>");
  });

  it("summarizes the stats command's answer", () => {
    const answer = { requested: 9, offered: 5, shown: 4, accepted: 2, partiallyAccepted: 0, rejected: 1, acceptanceRate: 0.5, recorded: { offered: 50, shown: 40, accepted: 10, acceptanceRate: 0.25 } };
    expect(statsSummary(answer)).toBe(
      "this session: offered 5, shown 4, accepted 2, partiallyAccepted 0, rejected 1, acceptance 50.0 %; recorded: offered 50, shown 40, accepted 10, acceptance 25.0 %",
    );
    expect(statsSummary(undefined)).toBe("no figures from the server");
  });
});

describe("menu", () => {
  it("offers the actions, with the toggle saying what it will do", () => {
    expect(menuItems(true).map((item) => item.label)).toEqual([
      "$(edit) Edit Selection…",
      "$(circle-slash) Disable Completions",
      "$(graph) Show Acceptance Stats",
      "$(debug-restart) Restart Server",
      "$(output) Show Log",
      "$(gear) Open Settings",
    ]);
    expect(menuItems(false)[1]).toMatchObject({ label: "$(check) Enable Completions", command: EXTENSION_COMMANDS.toggleCompletions });
  });
});

describe("StderrLevels", () => {
  it("keeps the level of each record the server logs and drops its timestamp", () => {
    const levels = new StderrLevels();
    expect(levels.line("2026-01-02 03:04:05,678 INFO pygls.server: Starting async IO server")).toEqual({
      level: "info",
      text: "pygls.server: Starting async IO server",
    });
    expect(levels.line("2026-01-02 03:04:05,679 WARNING ghostcomplete: slow")).toEqual({ level: "warn", text: "ghostcomplete: slow" });
    expect(levels.line("2026-01-02 03:04:05,680 DEBUG x: y").level).toBe("debug");
    expect(levels.line("2026-01-02 03:04:05,681 CRITICAL x: y").level).toBe("error");
  });

  it("gives a record's continuation lines its level, and tracebacks and stray lines error", () => {
    const levels = new StderrLevels();
    expect(levels.line("usage: ghostcomplete serve").level).toBe("error");
    levels.line("2026-01-02 03:04:05,678 INFO ghostcomplete: settings:");
    expect(levels.line("  backend: lookup")).toEqual({ level: "info", text: "  backend: lookup" });
    expect(levels.line("Traceback (most recent call last):").level).toBe("error");
    expect(levels.line('  File "x.py", line 1').level).toBe("error");
  });
});

describe("traceRequested", () => {
  it("is on for messages and verbose only", () => {
    expect(traceRequested("messages")).toBe(true);
    expect(traceRequested("verbose")).toBe(true);
    expect(traceRequested("off")).toBe(false);
    expect(traceRequested(undefined)).toBe(false);
  });
});

describe("partialAccept", () => {
  const doc = (text: string) => (start: number, end: number) => text.slice(start, end);

  it("finds the item a word-by-word accept took part of, and how much", () => {
    // "del self." then the suggestion "customers[customer.name]" at offset 9.
    const items = [{ start: 9, insertText: "customers[customer.name]" }];
    const after = "del self.customers";
    expect(partialAccept(items, { offset: 9, length: 0, text: "customers" }, doc(after))).toEqual({ index: 0, acceptedLength: 9 });
  });

  it("counts from the item's start after earlier partial accepts, in UTF-16 units", () => {
    const items = [
      { start: 4, insertText: "other" },
      { start: 4, insertText: "é😀 = 1" },
    ];
    const after = "x = é😀 ";
    expect(partialAccept(items, { offset: 5, length: 0, text: "😀 " }, doc(after))).toEqual({ index: 1, acceptedLength: 4 });
  });

  it("reports nothing for a whole accept, another text or an edit before the item", () => {
    const items = [{ start: 2, insertText: "abc" }];
    expect(partialAccept(items, { offset: 2, length: 0, text: "abc" }, doc("x abc"))).toBeUndefined();
    expect(partialAccept(items, { offset: 2, length: 0, text: "ax" }, doc("x ax"))).toBeUndefined();
    expect(partialAccept(items, { offset: 0, length: 0, text: "y" }, doc("yx abc"))).toBeUndefined();
    expect(partialAccept([], { offset: 2, length: 0, text: "a" }, doc("x a"))).toBeUndefined();
  });
});
