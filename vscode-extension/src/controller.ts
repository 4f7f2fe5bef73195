// The extension's moving parts: one language client at a time, the status bar item, the
// commands. Decisions live in the pure modules (settings, serverCommand, status, report,
// menu); this file wires them to VS Code and vscode-languageclient.

import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  type Executable,
  type LanguageClientOptions,
} from "vscode-languageclient/node";

import * as protocol from "./protocol";
import { statsCommand, reportForWebview, statsSummary } from "./report";
import { EXTENSION_COMMANDS, menuItems } from "./menu";
import {
  resolveServerCommand,
  ServerNotFound,
  whichOn,
  type ServerCommand,
} from "./serverCommand";
import { buildInitializationOptions, needsRestart, toggleCompletions, userLevelValue, type Json } from "./settings";
import { pipeStderr, pipeStdout, TraceChannel } from "./serverLog";
import { partialAccept, type OfferedText } from "./partialAccept";
import { presentStatus, type ClientState } from "./status";

const SECTION = protocol.CONFIGURATION_SECTION;

/** VS Code's own Accept Next Word, which the extension's keybinding runs (see partialAccept.ts). */
const ACCEPT_NEXT_WORD = "editor.action.inlineSuggest.acceptNextWord";
/** VS Code's own Trigger Inline Suggestion: asks the provider again, as an explicit request. */
const INLINE_SUGGEST_TRIGGER = "editor.action.inlineSuggest.trigger";

/** The items of the server's latest answer, for telling which one a word-by-word accept took. */
interface Offered {
  uri: string;
  texts: OfferedText[];
  items: vscode.InlineCompletionItem[];
}

/** The schemes whose documents the server sees (and gets didFocus for). */
export const DOCUMENT_SCHEMES: readonly string[] = ["file", "untitled"];

/** The server process: `<command> <args> serve [-v]`, stdio. No `transport`: with one set,
 * vscode-languageclient appends `--stdio`, which `ghostcomplete serve` does not take. */
export function buildServerOptions(server: ServerCommand, verbose: boolean, cwd: string | undefined): Executable {
  const args = [...server.args, "serve"];
  if (verbose) {
    args.push("-v");
  }
  return cwd === undefined ? { command: server.command, args } : { command: server.command, args, options: { cwd } };
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class Controller implements vscode.Disposable {
  private readonly output: vscode.LogOutputChannel;
  private readonly traceOutput: TraceChannel;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private client: LanguageClient | undefined;
  private server: ServerCommand | undefined;
  private state: ClientState = { phase: "starting" };
  private detail = "";
  private stopping = false;
  /** Starts and stops run one after another, never interleaved. */
  private queue: Promise<void> = Promise.resolve();
  private statsPanel: vscode.WebviewPanel | undefined;
  private offered: Offered | undefined;

  constructor() {
    this.output = vscode.window.createOutputChannel("ghostcomplete", { log: true });
    const traceChannel = vscode.window.createOutputChannel("ghostcomplete trace", { log: true });
    this.traceOutput = new TraceChannel(traceChannel, () => this.configuration().get<unknown>("trace.server"));
    this.statusItem = vscode.window.createStatusBarItem("ghostcomplete.status", vscode.StatusBarAlignment.Right, 100);
    this.statusItem.name = "ghostcomplete";
    this.statusItem.command = EXTENSION_COMMANDS.showMenu;
    this.disposables.push(this.output, this.traceOutput, traceChannel, this.statusItem);
  }

  /** Registers commands and listeners, starts the server. */
  activate(): Promise<void> {
    const register = (id: string, run: (...args: unknown[]) => unknown) =>
      this.disposables.push(vscode.commands.registerCommand(id, run));
    register(EXTENSION_COMMANDS.editSelection, () => this.editSelection());
    register(EXTENSION_COMMANDS.toggleCompletions, () => this.toggleCompletions());
    register(EXTENSION_COMMANDS.showStats, () => this.showStats());
    register(EXTENSION_COMMANDS.restartServer, () => this.restart());
    register(EXTENSION_COMMANDS.showMenu, () => this.showMenu());
    register(EXTENSION_COMMANDS.showLog, () => this.output.show(true));
    register(EXTENSION_COMMANDS.acceptNextWord, () => this.acceptNextWord());
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((event) => this.onConfigurationChanged(event)),
      vscode.window.onDidChangeActiveTextEditor((editor) => this.sendFocus(editor)),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        if (this.server === undefined || this.server.source === "PATH") {
          void this.restart(); // the workspace's own .venv may now be used
        } else {
          this.pushSettings(); // the workspace's own restricted settings now count
        }
      }),
    );
    this.render();
    this.statusItem.show();
    return this.restart();
  }

  async dispose(): Promise<void> {
    await this.enqueue(() => this.stopClient());
    this.statsPanel?.dispose();
    for (const disposable of this.disposables.splice(0)) {
      disposable.dispose();
    }
  }

  // --- the server ------------------------------------------------------------------------
  private enqueue(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(step, step);
    return this.queue;
  }

  /** Stops the running server (if any) and starts one with the current settings. */
  restart(): Promise<void> {
    return this.enqueue(async () => {
      await this.stopClient();
      await this.startClient();
    });
  }

  private configuration(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  /**
   * What the server gets from `configuration` (by default the section's current values):
   * unless the workspace is trusted, the restricted settings come from user settings only.
   */
  private serverSettings(configuration: unknown = this.configuration()): { [key: string]: Json } {
    const own = this.configuration();
    return buildInitializationOptions(configuration, vscode.workspace.isTrusted, (key) => userLevelValue(own.inspect(key)));
  }

  private findServer(): ServerCommand {
    return resolveServerCommand({
      configured: this.configuration().get<unknown>("server.command"),
      folders: (vscode.workspace.workspaceFolders ?? [])
        .filter((folder) => folder.uri.scheme === "file")
        .map((folder) => folder.uri.fsPath),
      trusted: vscode.workspace.isTrusted,
      platform: process.platform,
      isExecutable,
      which: (program) => whichOn(program, process.env["PATH"], process.platform, isExecutable),
    });
  }

  private async startClient(): Promise<void> {
    this.setState({ phase: "starting" }, "");
    let server: ServerCommand;
    try {
      server = this.findServer();
    } catch (error) {
      this.server = undefined;
      this.fail(error instanceof ServerNotFound ? error.message : errorText(error));
      return;
    }
    this.server = server;
    const folder = vscode.workspace.workspaceFolders?.find((candidate) => candidate.uri.scheme === "file");
    const executable = buildServerOptions(server, this.configuration().get<boolean>("server.verbose") === true, folder?.uri.fsPath);
    this.output.info(`starting ${[executable.command, ...(executable.args ?? [])].join(" ")} (from ${server.source})`);
    const clientOptions: LanguageClientOptions = {
      documentSelector: DOCUMENT_SCHEMES.map((scheme) => ({ scheme })),
      initializationOptions: () => this.serverSettings(),
      outputChannel: this.output,
      traceOutputChannel: this.traceOutput,
      // The client's default logs every stderr line as an error.
      stdioOptions: { stdout: pipeStdout, stderr: pipeStderr },
      // Lasting problems go to the status bar; the log has the rest.
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationFailedHandler: (error) => {
        this.output.info(`initialize failed: ${errorText(error)}`);
        return false;
      },
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          const answer = await next(document, position, context, token);
          this.remember(document, position, (Array.isArray(answer) ? answer : answer?.items) ?? []);
          return answer;
        },
        workspace: {
          // Answer workspace/configuration for "ghostcomplete" without the client-only keys.
          configuration: async (params, token, next) => {
            const answer = await next(params, token);
            if (!Array.isArray(answer)) {
              return answer;
            }
            return answer.map((value: unknown, index: number) =>
              params.items[index]?.section === SECTION ? this.serverSettings(value) : value,
            );
          },
        },
      },
    };
    const client = new LanguageClient("ghostcomplete", "ghostcomplete", executable, clientOptions);
    this.client = client;
    client.onNotification(protocol.DID_CHANGE_STATUS, (params: unknown) => {
      if (this.client === client) {
        this.setState({ phase: "running", status: protocol.parseStatus(params) });
      }
    });
    client.onNotification(protocol.DID_FIND_BETTER, (params: unknown) => {
      if (this.client === client && protocol.shouldAskAgain(protocol.parseBetter(params), this.editorSpot(client))) {
        // An explicit trigger: the server answers it from memory with the better suggestion.
        void vscode.commands.executeCommand(INLINE_SUGGEST_TRIGGER);
      }
    });
    client.onDidChangeState((event) => {
      if (this.client === client && event.newState === State.Stopped && !this.stopping) {
        this.setState({ phase: "stopped", reason: "the server exited (see Show Log)" });
      }
    });
    try {
      await client.start();
    } catch (error) {
      if (this.client === client) {
        this.client = undefined;
        this.fail(`could not start ${server.command}: ${errorText(error)}`);
      }
      return;
    }
    if (this.state.phase === "starting") {
      this.setState({ phase: "running", status: { kind: "Normal", message: "", busy: false } });
    }
    this.sendFocus(vscode.window.activeTextEditor);
    await this.describeServer(client, server);
  }

  private async stopClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.offered = undefined;
    if (client === undefined) {
      return;
    }
    this.stopping = true;
    try {
      if (client.needsStop()) {
        await client.stop(2000);
      }
    } catch (error) {
      this.output.info(`stopping: ${errorText(error)}`);
    } finally {
      this.stopping = false;
      await client.dispose().catch(() => undefined);
    }
  }

  /** Backend and version from ghostcomplete.status, for the status bar's tooltip. */
  private async describeServer(client: LanguageClient, server: ServerCommand): Promise<void> {
    try {
      const answer = (await client.sendRequest(ExecuteCommandRequest.type, {
        command: protocol.COMMAND_STATUS,
        arguments: [],
      })) as Partial<protocol.StatusAnswer> | null;
      this.detail = `backend ${answer?.chosen || answer?.backend || "?"} · server ${answer?.version ?? "?"} · ${server.command} (${server.source})`;
    } catch (error) {
      this.detail = `${server.command} (${server.source})`;
      this.output.info(`ghostcomplete.status: ${errorText(error)}`);
    }
    this.render();
  }

  private fail(reason: string): void {
    this.output.info(`${reason}`);
    this.setState({ phase: "stopped", reason }, "");
    void vscode.window.showErrorMessage(`ghostcomplete: ${reason}`, "Open Settings", "Show Log").then((choice) => {
      if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", "ghostcomplete.server.command");
      } else if (choice === "Show Log") {
        this.output.show(true);
      }
    });
  }

  private onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration(SECTION)) {
      return;
    }
    this.render(); // completion.enabled shows in the status bar
    if (needsRestart((section) => event.affectsConfiguration(section), vscode.workspace.isTrusted)) {
      this.output.info("settings changed that need a restart: restarting the server");
      void this.restart();
      return;
    }
    this.pushSettings();
  }

  private pushSettings(): void {
    const client = this.client;
    if (client !== undefined && client.state === State.Running) {
      void client
        .sendNotification(DidChangeConfigurationNotification.type, {
          settings: { [SECTION]: this.serverSettings() },
        })
        .catch((error: unknown) => this.output.info(`didChangeConfiguration: ${errorText(error)}`));
    }
  }

  private sendFocus(editor: vscode.TextEditor | undefined): void {
    const client = this.client;
    if (editor === undefined || client === undefined || client.state !== State.Running) {
      return;
    }
    if (!DOCUMENT_SCHEMES.includes(editor.document.uri.scheme)) {
      return;
    }
    void client
      .sendNotification(protocol.DID_FOCUS, {
        textDocument: { uri: client.code2ProtocolConverter.asUri(editor.document.uri) },
      })
      .catch((error: unknown) => this.output.info(`didFocus: ${errorText(error)}`));
  }

  /** The active editor's document (named as the server knows it), version and cursor. */
  private editorSpot(client: LanguageClient): protocol.EditorSpot | undefined {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined) {
      return undefined;
    }
    const cursor = editor.selection.active;
    return {
      uri: client.code2ProtocolConverter.asUri(editor.document.uri),
      version: editor.document.version,
      line: cursor.line,
      character: cursor.character,
    };
  }

  private remember(document: vscode.TextDocument, position: vscode.Position, items: vscode.InlineCompletionItem[]): void {
    const plain = items.filter((item) => typeof item.insertText === "string");
    this.offered = {
      uri: document.uri.toString(),
      texts: plain.map((item) => ({
        start: document.offsetAt(item.range?.start ?? position),
        insertText: item.insertText as string,
      })),
      items: plain,
    };
  }

  /**
   * VS Code's Accept Next Word, then didPartiallyAcceptCompletion for the item it took part of.
   * The edit is read from the change event, which reaches the extension before the command's
   * answer does, and the notification follows the client's didChange for the same edit.
   */
  async acceptNextWord(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const client = this.client;
    const offered = this.offered;
    let listener: vscode.Disposable | undefined;
    if (editor !== undefined && client !== undefined && offered !== undefined && offered.uri === editor.document.uri.toString()) {
      const document = editor.document;
      listener = vscode.workspace.onDidChangeTextDocument((event) => {
        const change = event.contentChanges[0];
        if (event.document !== document || change === undefined || event.contentChanges.length !== 1) {
          return;
        }
        listener?.dispose();
        const taken = partialAccept(
          offered.texts,
          { offset: change.rangeOffset, length: change.rangeLength, text: change.text },
          (start, end) => document.getText(new vscode.Range(document.positionAt(start), document.positionAt(end))),
        );
        const item = taken === undefined ? undefined : offered.items[taken.index];
        if (taken !== undefined && item !== undefined && client.state === State.Running) {
          this.sendPartialAccept(client, item, taken.acceptedLength);
        }
      });
    }
    try {
      await vscode.commands.executeCommand(ACCEPT_NEXT_WORD);
    } finally {
      listener?.dispose();
    }
  }

  private sendPartialAccept(client: LanguageClient, item: vscode.InlineCompletionItem, acceptedLength: number): void {
    const params = {
      item: {
        insertText: item.insertText,
        range: item.range === undefined ? undefined : client.code2ProtocolConverter.asRange(item.range),
        command: item.command,
      },
      acceptedLength,
    };
    void client
      .sendNotification(protocol.DID_PARTIALLY_ACCEPT_COMPLETION, params)
      .catch((error: unknown) => this.output.info(`didPartiallyAcceptCompletion: ${errorText(error)}`));
  }

  // --- status bar ------------------------------------------------------------------------
  private setState(state: ClientState, detail?: string): void {
    this.state = state;
    if (detail !== undefined) {
      this.detail = detail;
    }
    this.render();
  }

  private enabled(): boolean {
    return this.configuration().get<boolean>("completion.enabled") !== false;
  }

  private render(): void {
    const view = presentStatus(this.state, this.enabled(), this.detail);
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
    this.statusItem.backgroundColor = view.background === undefined ? undefined : new vscode.ThemeColor(view.background);
  }

  /** What the status bar shows now (tests read it). */
  statusView() {
    return presentStatus(this.state, this.enabled(), this.detail);
  }

  // --- commands --------------------------------------------------------------------------
  private async showMenu(): Promise<void> {
    const view = this.statusView();
    const items = menuItems(this.enabled());
    const picked = await vscode.window.showQuickPick(items, {
      title: `ghostcomplete: ${view.summary}`,
      placeHolder: view.tooltip.split("\n")[0],
    });
    if (picked !== undefined) {
      await vscode.commands.executeCommand(picked.command, ...(picked.args ?? []));
    }
  }

  private runningClient(): LanguageClient | undefined {
    const client = this.client;
    if (client === undefined || client.state !== State.Running) {
      void vscode.window.showWarningMessage(
        "ghostcomplete: the server is not running (Restart Server, or Show Log for why).",
      );
      return undefined;
    }
    return client;
  }

  async editSelection(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined) {
      void vscode.window.showInformationMessage("ghostcomplete: open a file and select the code to edit first.");
      return;
    }
    if (editor.selection.isEmpty) {
      void vscode.window.showInformationMessage(
        "ghostcomplete: nothing is selected. Select the code to edit, then run Edit Selection… again.",
      );
      return;
    }
    if (!DOCUMENT_SCHEMES.includes(editor.document.uri.scheme)) {
      void vscode.window.showInformationMessage(
        `ghostcomplete: this editor (${editor.document.uri.scheme}:) is not a file the server sees.`,
      );
      return;
    }
    const client = this.runningClient();
    if (client === undefined) {
      return;
    }
    const instruction = await vscode.window.showInputBox({
      title: "ghostcomplete: Edit Selection",
      prompt: "How should the selected code change?",
      placeHolder: "e.g. add type hints; handle the empty list; rename x to total",
      ignoreFocusOut: true,
      validateInput: (value) => (value.trim() === "" ? "Say what to change." : undefined),
    });
    if (instruction === undefined || instruction.trim() === "") {
      return;
    }
    const params: protocol.EditParams = {
      uri: client.code2ProtocolConverter.asUri(editor.document.uri),
      range: client.code2ProtocolConverter.asRange(editor.selection),
      instruction: instruction.trim(),
    };
    let answer: protocol.EditAnswer;
    try {
      const raw = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: "ghostcomplete: editing the selection…", cancellable: true },
        (_progress, token) =>
          client.sendRequest(ExecuteCommandRequest.type, { command: protocol.COMMAND_EDIT, arguments: [params] }, token),
      );
      answer = protocol.parseEditAnswer(raw);
    } catch (error) {
      void vscode.window.showErrorMessage(`ghostcomplete: the edit failed: ${errorText(error)}`);
      return;
    }
    if (answer.applied) {
      vscode.window.setStatusBarMessage(`ghostcomplete: ${answer.message || "edit applied"}`, 5000);
    } else {
      void vscode.window.showWarningMessage(`ghostcomplete: ${answer.message || "the edit was not applied"}`);
    }
  }

  async toggleCompletions(): Promise<void> {
    const configuration = this.configuration();
    const hasWorkspace = (vscode.workspace.workspaceFolders?.length ?? 0) > 0 || vscode.workspace.workspaceFile !== undefined;
    const { value, level } = toggleCompletions(configuration.inspect<boolean>("completion.enabled"), hasWorkspace);
    await configuration.update(
      "completion.enabled",
      value,
      level === "global" ? vscode.ConfigurationTarget.Global : vscode.ConfigurationTarget.Workspace,
    );
    vscode.window.setStatusBarMessage(
      `ghostcomplete: completions ${value ? "on" : "off"} (${level === "global" ? "user" : "workspace"} settings)`,
      3000,
    );
  }

  async showStats(): Promise<void> {
    const configuration = this.configuration();
    if (configuration.get<string>("telemetry.mode") === "off") {
      void vscode.window.showInformationMessage(
        "ghostcomplete: telemetry is off (ghostcomplete.telemetry.mode), so nothing is recorded; the report shows what was recorded before.",
      );
    }
    let server: ServerCommand;
    try {
      server = this.server ?? this.findServer();
    } catch (error) {
      void vscode.window.showErrorMessage(`ghostcomplete: ${errorText(error)}`);
      return;
    }
    const file = path.join(os.tmpdir(), `ghostcomplete-stats-${process.pid}.html`);
    const { command, args } = statsCommand(server, file, configuration.get<unknown>("telemetry.path"));
    try {
      await new Promise<void>((resolve, reject) => {
        execFile(command, args, { timeout: 60_000 }, (error, _stdout, stderr) => {
          if (error) {
            reject(new Error(stderr.trim() || error.message));
          } else {
            resolve();
          }
        });
      });
      const html = await fs.promises.readFile(file, "utf8");
      this.showReport(html);
    } catch (error) {
      this.output.info(`${command} ${args.join(" ")}: ${errorText(error)}`);
      await this.showStatsFallback(errorText(error));
    } finally {
      await fs.promises.rm(file, { force: true });
    }
  }

  private showReport(html: string): void {
    if (this.statsPanel === undefined) {
      this.statsPanel = vscode.window.createWebviewPanel(
        "ghostcomplete.stats",
        "ghostcomplete: Acceptance Stats",
        vscode.ViewColumn.Active,
        { enableScripts: false },
      );
      this.statsPanel.onDidDispose(() => {
        this.statsPanel = undefined;
      });
    } else {
      this.statsPanel.reveal();
    }
    this.statsPanel.webview.html = reportForWebview(html);
  }

  /** No HTML report: the running server's counts in a message. */
  private async showStatsFallback(why: string): Promise<void> {
    const client = this.client;
    if (client === undefined || client.state !== State.Running) {
      void vscode.window.showErrorMessage(`ghostcomplete: no stats report: ${why}`);
      return;
    }
    try {
      const raw: unknown = await client.sendRequest(ExecuteCommandRequest.type, { command: protocol.COMMAND_STATS, arguments: [] });
      void vscode.window.showInformationMessage(`ghostcomplete: ${statsSummary(raw)} (no HTML report: ${why})`);
    } catch (error) {
      void vscode.window.showErrorMessage(`ghostcomplete: no stats: ${errorText(error)}`);
    }
  }
}
