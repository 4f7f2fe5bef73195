// A thin fake of the `vscode` module.
//
// VS Code itself cannot be downloaded on the machines these tests run on, so the extension —
// and vscode-languageclient, which the extension bundles — run against this stand-in. It
// implements the API surface they touch (settings with levels and change events, the status
// bar, messages, input boxes, quick picks, commands, documents, editors, provider
// registration) and records what the extension did, so tests can look. Anything the
// language client touches that is not modelled here is an inert function that returns a
// Disposable (see `inert` below). tsc checks the extension against the real @types/vscode.

import { readFileSync } from "node:fs";
import * as path from "node:path";

// --- basic types -----------------------------------------------------------------------
export class Disposable {
  constructor(private readonly callOnDispose?: () => void) {}
  static from(...disposables: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => disposables.forEach((disposable) => disposable.dispose()));
  }
  dispose(): void {
    this.callOnDispose?.();
  }
}

type Listener<T> = (event: T) => unknown;

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  readonly event = (listener: Listener<T>, thisArg?: unknown, disposables?: Disposable[]): Disposable => {
    const bound: Listener<T> = (event) => listener.call(thisArg, event);
    this.listeners.push(bound);
    const disposable = new Disposable(() => {
      this.listeners = this.listeners.filter((candidate) => candidate !== bound);
    });
    disposables?.push(disposable);
    return disposable;
  };
  fire(event: T): void {
    for (const listener of [...this.listeners]) {
      listener(event);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
    readonly query = "",
    readonly fragment = "",
  ) {}
  static file(fsPath: string): Uri {
    return new Uri("file", "", fsPath.split(path.sep).join("/"));
  }
  static parse(value: string): Uri {
    const match = /^([a-zA-Z][\w+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(value);
    if (match === null) {
      throw new Error(`fake vscode: cannot parse URI ${value}`);
    }
    return new Uri(match[1] ?? "", match[2] ?? "", decodeURIComponent(match[3] ?? ""), match[4] ?? "", match[5] ?? "");
  }
  get fsPath(): string {
    return this.path;
  }
  with(change: { scheme?: string; path?: string }): Uri {
    return new Uri(change.scheme ?? this.scheme, this.authority, change.path ?? this.path, this.query, this.fragment);
  }
  toString(): string {
    const encoded = this.path.split("/").map(encodeURIComponent).join("/");
    return this.scheme === "file" ? `file://${encoded}` : `${this.scheme}:${encoded}`;
  }
  toJSON(): unknown {
    return { scheme: this.scheme, path: this.path };
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
  isEqual(other: Position): boolean {
    return this.line === other.line && this.character === other.character;
  }
  isBefore(other: Position): boolean {
    return this.line < other.line || (this.line === other.line && this.character < other.character);
  }
  translate(lineDelta = 0, characterDelta = 0): Position {
    return new Position(this.line + lineDelta, this.character + characterDelta);
  }
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(start: Position | number, end: Position | number, endLine?: number, endCharacter?: number) {
    if (typeof start === "number" && typeof end === "number") {
      this.start = new Position(start, end);
      this.end = new Position(endLine ?? start, endCharacter ?? end);
    } else {
      this.start = start as Position;
      this.end = end as Position;
    }
  }
  get isEmpty(): boolean {
    return this.start.isEqual(this.end);
  }
}

export class Selection extends Range {
  constructor(
    readonly anchor: Position,
    readonly active: Position,
  ) {
    super(anchor.isBefore(active) ? anchor : active, anchor.isBefore(active) ? active : anchor);
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class CancellationError extends Error {}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    if (!this.token.isCancellationRequested) {
      this.token.isCancellationRequested = true;
      this.emitter.fire();
    }
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class InlineCompletionItem {
  filterText?: string;
  constructor(
    public insertText: string | { value: string },
    public range?: Range,
    public command?: { command: string; title: string; arguments?: unknown[] },
  ) {}
}

export class InlineCompletionList {
  constructor(public items: InlineCompletionItem[]) {}
}

export class SnippetString {
  constructor(public value = "") {}
}

export class MarkdownString {
  constructor(public value = "") {}
}

export class WorkspaceEdit {
  readonly edits: { uri: Uri; range: Range; newText: string }[] = [];
  replace(uri: Uri, range: Range, newText: string): void {
    this.edits.push({ uri, range, newText });
  }
  insert(uri: Uri, position: Position, newText: string): void {
    this.edits.push({ uri, range: new Range(position, position), newText });
  }
  delete(uri: Uri, range: Range): void {
    this.edits.push({ uri, range, newText: "" });
  }
  set(uri: Uri, edits: { range: Range; newText: string }[]): void {
    for (const edit of edits) {
      this.edits.push({ uri, range: edit.range, newText: edit.newText });
    }
  }
  entries(): [Uri, { range: Range; newText: string }[]][] {
    return this.edits.map((edit) => [edit.uri, [{ range: edit.range, newText: edit.newText }]]);
  }
  get size(): number {
    return this.edits.length;
  }
}

export class TextEdit {
  constructor(
    public range: Range,
    public newText: string,
  ) {}
}

export enum StatusBarAlignment { Left = 1, Right = 2 }
export enum ConfigurationTarget { Global = 1, Workspace = 2, WorkspaceFolder = 3 }
export enum ProgressLocation { SourceControl = 1, Window = 10, Notification = 15 }
export enum ViewColumn { Active = -1, Beside = -2, One = 1 }
export enum LogLevel { Off = 0, Trace = 1, Debug = 2, Info = 3, Warning = 4, Error = 5 }
export enum InlineCompletionTriggerKind { Invoke = 0, Automatic = 1 }
export enum EndOfLine { LF = 1, CRLF = 2 }
export enum UIKind { Desktop = 1, Web = 2 }
export enum TextDocumentSaveReason { Manual = 1, AfterDelay = 2, FocusOut = 3 }

export const version = "1.91.0";

// --- documents and editors ---------------------------------------------------------------
export class FakeTextDocument {
  version = 1;
  isClosed = false;
  isDirty = false;
  readonly eol = EndOfLine.LF;
  constructor(
    readonly uri: Uri,
    readonly languageId: string,
    private text: string,
  ) {}
  get fileName(): string {
    return this.uri.fsPath;
  }
  get isUntitled(): boolean {
    return this.uri.scheme === "untitled";
  }
  get lineCount(): number {
    return this.text.split("\n").length;
  }
  getText(range?: Range): string {
    return range === undefined ? this.text : this.text.slice(this.offsetAt(range.start), this.offsetAt(range.end));
  }
  offsetAt(position: Position): number {
    const lines = this.text.split("\n");
    let offset = 0;
    for (let line = 0; line < position.line && line < lines.length; line++) {
      offset += (lines[line] ?? "").length + 1;
    }
    return offset + Math.min(position.character, (lines[position.line] ?? "").length);
  }
  positionAt(offset: number): Position {
    const before = this.text.slice(0, offset).split("\n");
    return new Position(before.length - 1, (before[before.length - 1] ?? "").length);
  }
  lineAt(line: number): { text: string; range: Range } {
    const text = this.text.split("\n")[line] ?? "";
    return { text, range: new Range(line, 0, line, text.length) };
  }
  /** Replaces `range` with `newText` and fires onDidChangeTextDocument (as typing does). */
  edit(range: Range, newText: string): void {
    const start = this.offsetAt(range.start);
    const end = this.offsetAt(range.end);
    this.text = this.text.slice(0, start) + newText + this.text.slice(end);
    this.version += 1;
    workspaceEvents.changeText.fire({
      document: this,
      contentChanges: [{ range, rangeOffset: start, rangeLength: end - start, text: newText }],
      reason: undefined,
    });
  }
  save(): Promise<boolean> {
    return Promise.resolve(true);
  }
}

export interface FakeEditor {
  document: FakeTextDocument;
  selection: Selection;
  selections: Selection[];
  visibleRanges: Range[];
  options: Record<string, unknown>;
  viewColumn: ViewColumn;
}

// --- recorded state ----------------------------------------------------------------------
export interface ShownMessage {
  level: "info" | "warning" | "error";
  message: string;
  items: string[];
}

export class FakeOutputChannel {
  readonly lines: string[] = [];
  logLevel = LogLevel.Info;
  private readonly levelEmitter = new EventEmitter<LogLevel>();
  readonly onDidChangeLogLevel = this.levelEmitter.event;
  shown = false;
  constructor(readonly name: string) {}
  append(value: string): void {
    this.lines.push(value);
  }
  appendLine(value: string): void {
    this.lines.push(value);
  }
  replace(value: string): void {
    this.lines.splice(0, this.lines.length, value);
  }
  clear(): void {
    this.lines.splice(0);
  }
  trace(message: string): void {
    this.lines.push(`[trace] ${message}`);
  }
  debug(message: string): void {
    this.lines.push(`[debug] ${message}`);
  }
  info(message: string): void {
    this.lines.push(`[info] ${message}`);
  }
  warn(message: string): void {
    this.lines.push(`[warning] ${message}`);
  }
  error(message: string | Error): void {
    this.lines.push(`[error] ${String(message)}`);
  }
  show(): void {
    this.shown = true;
  }
  hide(): void {
    this.shown = false;
  }
  dispose(): void {}
  get text(): string {
    return this.lines.join("\n");
  }
}

export class FakeStatusBarItem {
  text = "";
  tooltip: string | undefined = "";
  backgroundColor: ThemeColor | undefined;
  command: string | undefined;
  name: string | undefined;
  visible = false;
  constructor(
    readonly id: string,
    readonly alignment: StatusBarAlignment,
    readonly priority: number,
  ) {}
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.visible = false;
  }
}

export class FakeWebviewPanel {
  readonly webview = { html: "", options: {} };
  private readonly disposeEmitter = new EventEmitter<void>();
  readonly onDidDispose = this.disposeEmitter.event;
  revealed = 0;
  constructor(
    readonly viewType: string,
    readonly title: string,
  ) {}
  reveal(): void {
    this.revealed += 1;
  }
  dispose(): void {
    this.disposeEmitter.fire();
  }
}

type Level = "global" | "workspace";

/** Everything a test can set up or inspect. `reset()` between tests. */
export const fake = {
  /** Settings written at each level, by full dotted key ("ghostcomplete.backend.kind"). */
  settings: { global: new Map<string, unknown>(), workspace: new Map<string, unknown>() } as Record<Level, Map<string, unknown>>,
  messages: [] as ShownMessage[],
  /** Answers for the next message boxes with items (in order; undefined = dismissed). */
  messageAnswers: [] as (string | undefined)[],
  inputBoxes: [] as Record<string, unknown>[],
  inputBoxAnswers: [] as (string | undefined)[],
  quickPicks: [] as { items: unknown[]; options: unknown }[],
  /** Picks an item from a quick pick's items (undefined = dismissed). */
  quickPickAnswer: undefined as ((items: unknown[]) => unknown) | undefined,
  statusBarMessages: [] as string[],
  outputChannels: [] as FakeOutputChannel[],
  statusBarItems: [] as FakeStatusBarItem[],
  webviewPanels: [] as FakeWebviewPanel[],
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  /** Commands run that nobody registered (VS Code's own, like workbench.action.openSettings). */
  builtinCommandsRun: [] as { command: string; args: unknown[] }[],
  inlineProviders: [] as { selector: unknown; provider: any }[],
  appliedEdits: [] as unknown[],
  progress: [] as unknown[],
  reset(): void {
    this.settings.global.clear();
    this.settings.workspace.clear();
    for (const list of [this.messages, this.messageAnswers, this.inputBoxes, this.inputBoxAnswers, this.quickPicks,
      this.statusBarMessages, this.outputChannels, this.statusBarItems, this.webviewPanels, this.builtinCommandsRun,
      this.inlineProviders, this.appliedEdits, this.progress, textDocuments] as unknown[][]) {
      list.splice(0);
    }
    this.quickPickAnswer = undefined;
    this.commands.clear();
    workspace.workspaceFolders = undefined;
    workspace.isTrusted = true;
    window.activeTextEditor = undefined;
  },
  /** The output channel of that name (the last one created). */
  output(name: string): FakeOutputChannel | undefined {
    return this.outputChannels.filter((channel) => channel.name === name).pop();
  },
};

// --- settings: the extension's package.json defaults, then user, then workspace values -------
const manifest = JSON.parse(readFileSync(path.join(__dirname, "..", "package.json"), "utf8")) as {
  contributes: { configuration: { properties: Record<string, { default?: unknown }> }[] };
};
export const manifestDefaults = new Map<string, unknown>();
for (const group of manifest.contributes.configuration) {
  for (const [key, schema] of Object.entries(group.properties)) {
    manifestDefaults.set(key, schema.default ?? null);
  }
}

function effective(key: string): unknown {
  for (const level of ["workspace", "global"] as const) {
    if (fake.settings[level].has(key)) {
      return fake.settings[level].get(key);
    }
  }
  return manifestDefaults.get(key);
}

function setIn(tree: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split(".");
  let node = tree;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== "object" || node[part] === null) {
      node[part] = {};
    }
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

function getIn(tree: unknown, dotted: string): unknown {
  let node = tree;
  for (const part of dotted.split(".")) {
    if (typeof node !== "object" || node === null || !(part in node)) {
      return undefined;
    }
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

const configurationEmitter = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

/** Fires onDidChangeConfiguration for these full dotted keys. */
export function fireConfigurationChange(keys: string[]): void {
  configurationEmitter.fire({
    affectsConfiguration: (section: string) =>
      keys.some((key) => key === section || key.startsWith(`${section}.`) || section.startsWith(`${key}.`)),
  });
}

/** Sets a setting at a level (as a user editing settings.json would) and fires the change. */
export function setSetting(key: string, value: unknown, level: Level = "global"): void {
  if (value === undefined) {
    fake.settings[level].delete(key);
  } else {
    fake.settings[level].set(key, value);
  }
  fireConfigurationChange([key]);
}

function getConfiguration(section?: string): Record<string, unknown> {
  const prefix = section ? `${section}.` : "";
  const tree: Record<string, unknown> = {};
  const keys = new Set([...manifestDefaults.keys(), ...fake.settings.global.keys(), ...fake.settings.workspace.keys()]);
  for (const key of keys) {
    if (key.startsWith(prefix)) {
      setIn(tree, key.slice(prefix.length), structuredClone(effective(key)));
    }
  }
  // Like VS Code's WorkspaceConfiguration: the values as properties, plus four functions.
  const full = (key: string) => prefix + key;
  Object.defineProperties(tree, {
    get: {
      enumerable: false,
      value: (key: string, defaultValue?: unknown) => {
        const value = getIn(tree, key);
        return value === undefined ? defaultValue : value;
      },
    },
    has: { enumerable: false, value: (key: string) => getIn(tree, key) !== undefined },
    inspect: {
      enumerable: false,
      value: (key: string) => ({
        key: full(key),
        defaultValue: manifestDefaults.get(full(key)),
        globalValue: fake.settings.global.get(full(key)),
        workspaceValue: fake.settings.workspace.get(full(key)),
      }),
    },
    update: {
      enumerable: false,
      value: async (key: string, value: unknown, target?: ConfigurationTarget | boolean) => {
        const level: Level = target === ConfigurationTarget.Global || target === true ? "global" : "workspace";
        if (level === "workspace" && workspace.workspaceFolders === undefined) {
          throw new Error("fake vscode: no workspace is open, so no workspace settings can be written");
        }
        setSetting(full(key), value, level);
      },
    },
  });
  return tree;
}

// --- namespaces --------------------------------------------------------------------------
/** Any function the language client calls that is not modelled: does nothing, returns a
 * Disposable (events and register* functions both look like this). */
function inert(): Disposable {
  return new Disposable();
}

function namespace<T extends object>(known: T): T {
  return new Proxy(known, {
    get: (target, property) => (property in target ? (target as Record<string | symbol, unknown>)[property] : inert),
  });
}

const textDocuments: FakeTextDocument[] = [];
const workspaceEvents = {
  configuration: configurationEmitter,
  openText: new EventEmitter<FakeTextDocument>(),
  closeText: new EventEmitter<FakeTextDocument>(),
  changeText: new EventEmitter<unknown>(),
  grantTrust: new EventEmitter<void>(),
};
const activeEditorEmitter = new EventEmitter<FakeEditor | undefined>();

export const workspace = namespace({
  workspaceFolders: undefined as { uri: Uri; name: string; index: number }[] | undefined,
  workspaceFile: undefined as Uri | undefined,
  isTrusted: true,
  textDocuments,
  notebookDocuments: [] as unknown[],
  getConfiguration,
  onDidChangeConfiguration: configurationEmitter.event,
  onDidOpenTextDocument: workspaceEvents.openText.event,
  onDidCloseTextDocument: workspaceEvents.closeText.event,
  onDidChangeTextDocument: workspaceEvents.changeText.event,
  onDidGrantWorkspaceTrust: workspaceEvents.grantTrust.event,
  applyEdit: async (edit: WorkspaceEdit) => {
    fake.appliedEdits.push(edit);
    for (const { uri, range, newText } of edit.edits) {
      textDocuments.find((document) => document.uri.toString() === uri.toString())?.edit(range, newText);
    }
    return true;
  },
  createFileSystemWatcher: () => ({
    onDidCreate: inert,
    onDidChange: inert,
    onDidDelete: inert,
    dispose: () => undefined,
  }),
});

/** Opens a document (fires onDidOpenTextDocument) and optionally makes it the active editor. */
/** The user trusts the workspace now (VS Code's "Trust" in restricted mode). */
export function grantWorkspaceTrust(): void {
  workspace.isTrusted = true;
  workspaceEvents.grantTrust.fire();
}

export function openDocument(uri: Uri, languageId: string, text: string, focus = true): FakeTextDocument {
  const document = new FakeTextDocument(uri, languageId, text);
  textDocuments.push(document);
  workspaceEvents.openText.fire(document);
  if (focus) {
    showEditor(document);
  }
  return document;
}

/** Makes `document` the active editor with this selection (fires onDidChangeActiveTextEditor). */
export function showEditor(document: FakeTextDocument, selection = new Selection(new Position(0, 0), new Position(0, 0))): FakeEditor {
  const editor: FakeEditor = { document, selection, selections: [selection], visibleRanges: [], options: {}, viewColumn: ViewColumn.One };
  window.activeTextEditor = editor;
  activeEditorEmitter.fire(editor);
  return editor;
}

function showMessage(level: ShownMessage["level"]) {
  return (message: string, ...rest: unknown[]): Promise<string | undefined> => {
    const items = rest.filter((item): item is string => typeof item === "string");
    fake.messages.push({ level, message, items });
    return Promise.resolve(items.length > 0 ? fake.messageAnswers.shift() : undefined);
  };
}

export const window = namespace({
  activeTextEditor: undefined as FakeEditor | undefined,
  visibleTextEditors: [] as FakeEditor[],
  tabGroups: { all: [], onDidChangeTabs: inert, onDidChangeTabGroups: inert },
  onDidChangeActiveTextEditor: activeEditorEmitter.event,
  createOutputChannel: (name: string) => {
    const channel = new FakeOutputChannel(name);
    fake.outputChannels.push(channel);
    return channel;
  },
  createStatusBarItem: (id: string, alignment: StatusBarAlignment, priority: number) => {
    const item = new FakeStatusBarItem(id, alignment, priority);
    fake.statusBarItems.push(item);
    return item;
  },
  createWebviewPanel: (viewType: string, title: string) => {
    const panel = new FakeWebviewPanel(viewType, title);
    fake.webviewPanels.push(panel);
    return panel;
  },
  showInformationMessage: showMessage("info"),
  showWarningMessage: showMessage("warning"),
  showErrorMessage: showMessage("error"),
  showInputBox: (options: Record<string, unknown>) => {
    fake.inputBoxes.push(options);
    return Promise.resolve(fake.inputBoxAnswers.shift());
  },
  showQuickPick: (items: unknown[], options: unknown) => {
    fake.quickPicks.push({ items, options });
    return Promise.resolve(fake.quickPickAnswer?.(items));
  },
  setStatusBarMessage: (text: string) => {
    fake.statusBarMessages.push(text);
    return new Disposable();
  },
  withProgress: async <R>(options: unknown, task: (progress: { report(value: unknown): void }, token: unknown) => Promise<R>) => {
    fake.progress.push(options);
    const source = new CancellationTokenSource();
    return task({ report: () => undefined }, source.token);
  },
});

export const commands = namespace({
  registerCommand: (id: string, run: (...args: unknown[]) => unknown) => {
    if (fake.commands.has(id)) {
      throw new Error(`command '${id}' already exists`); // as VS Code does
    }
    fake.commands.set(id, run);
    return new Disposable(() => fake.commands.delete(id));
  },
  executeCommand: async (id: string, ...args: unknown[]) => {
    const run = fake.commands.get(id);
    if (run === undefined) {
      fake.builtinCommandsRun.push({ command: id, args });
      return undefined;
    }
    return run(...args);
  },
  getCommands: async () => [...fake.commands.keys()],
});

export const languages = namespace({
  match: (selector: unknown, document: FakeTextDocument) => {
    const filters = Array.isArray(selector) ? selector : [selector];
    return filters.some((filter: { scheme?: string; language?: string }) =>
      (filter.scheme === undefined || filter.scheme === document.uri.scheme) &&
      (filter.language === undefined || filter.language === document.languageId),
    ) ? 10 : 0;
  },
  registerInlineCompletionItemProvider: (selector: unknown, provider: unknown) => {
    const entry = { selector, provider };
    fake.inlineProviders.push(entry);
    return new Disposable(() => fake.inlineProviders.splice(fake.inlineProviders.indexOf(entry), 1));
  },
  createDiagnosticCollection: () => ({ set: inert, delete: inert, clear: inert, forEach: inert, get: () => [], has: () => false, dispose: inert }),
});

export const env = namespace({
  appName: "fake VS Code",
  language: "en",
  machineId: "fake",
  uiKind: UIKind.Desktop,
  openExternal: async () => true,
});

export const l10n = { t: (message: string) => message };
