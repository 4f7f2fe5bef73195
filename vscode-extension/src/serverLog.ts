// The server's stderr and the LSP trace, into the two log output channels.
//
// vscode-languageclient 11 writes every stderr line with `error()`, so INFO lines showed as
// [error]. The server logs `<date> <time>,<ms> LEVEL logger: message` (server/cli.py); each
// record keeps its level here, and the lines after a record that do not start one (a
// traceback, a multi-line message) keep that record's level.
//
// The client traces only while the trace channel's own log level is Trace, which the user
// sets with "Developer: Set Log Level…", not with ghostcomplete.trace.server. TraceChannel
// makes the setting work: its level is Trace while the setting is "messages" or "verbose".

import type { Readable } from "node:stream";
import { createInterface } from "node:readline";
import * as vscode from "vscode";

import { StderrLevels, traceRequested } from "./logLevels";

function onLines(input: Readable, each: (line: string) => void): void {
  createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", each);
}

/** The `stdioOptions.stderr` of LanguageClientOptions: each line at its own level. */
export function pipeStderr(input: Readable, channel: vscode.LogOutputChannel): void {
  const levels = new StderrLevels();
  onLines(input, (line) => {
    const { level, text } = levels.line(line);
    channel[level](text);
  });
}

/** The `stdioOptions.stdout`, as the client's default (used only where stdout is not the
 * protocol's stream: no transport means stdio here, so never). */
export function pipeStdout(input: Readable, channel: vscode.LogOutputChannel): void {
  onLines(input, (line) => channel.info(line));
}

/**
 * A LogOutputChannel for the client's `traceOutputChannel` whose log level follows
 * ghostcomplete.trace.server: Trace while the setting asks for a trace, else the level the
 * user gave the underlying channel. Messages go to that channel at info level, so that they
 * show whatever its own level is.
 */
export class TraceChannel implements vscode.LogOutputChannel {
  private readonly changed = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel: vscode.Event<vscode.LogLevel> = this.changed.event;
  private requested: boolean;
  private readonly listeners: vscode.Disposable[];

  constructor(
    private readonly channel: vscode.LogOutputChannel,
    setting: () => unknown,
  ) {
    this.requested = traceRequested(setting());
    this.listeners = [
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (!event.affectsConfiguration("ghostcomplete.trace.server")) {
          return;
        }
        const requested = traceRequested(setting());
        if (requested !== this.requested) {
          this.requested = requested;
          this.changed.fire(this.logLevel);
        }
      }),
      // "Developer: Set Log Level…" on the channel still works while the setting is off.
      channel.onDidChangeLogLevel(() => {
        if (!this.requested) {
          this.changed.fire(this.logLevel);
        }
      }),
    ];
  }

  get name(): string {
    return this.channel.name;
  }

  get logLevel(): vscode.LogLevel {
    return this.requested ? vscode.LogLevel.Trace : this.channel.logLevel;
  }

  trace(message: string, ...args: unknown[]): void {
    if (this.requested) {
      this.channel.info(message, ...args);
    } else {
      this.channel.trace(message, ...args);
    }
  }
  debug(message: string, ...args: unknown[]): void {
    this.channel.debug(message, ...args);
  }
  info(message: string, ...args: unknown[]): void {
    this.channel.info(message, ...args);
  }
  warn(message: string, ...args: unknown[]): void {
    this.channel.warn(message, ...args);
  }
  error(error: string | Error, ...args: unknown[]): void {
    this.channel.error(error, ...args);
  }
  append(value: string): void {
    this.channel.append(value);
  }
  appendLine(value: string): void {
    this.channel.appendLine(value);
  }
  replace(value: string): void {
    this.channel.replace(value);
  }
  clear(): void {
    this.channel.clear();
  }
  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === "boolean" || columnOrPreserveFocus === undefined) {
      this.channel.show(columnOrPreserveFocus);
    } else {
      this.channel.show(columnOrPreserveFocus, preserveFocus);
    }
  }
  hide(): void {
    this.channel.hide();
  }
  dispose(): void {
    for (const listener of this.listeners) {
      listener.dispose();
    }
    this.changed.dispose();
  }
}
