// Mirror of server/protocol.py: every custom method, notification and command of ghostcomplete.
// Change the two together (tests/test_vscode_manifest.py compares them).

export const DID_FOCUS = "textDocument/didFocus";
export const DID_SHOW_COMPLETION = "textDocument/didShowCompletion";
export const DID_PARTIALLY_ACCEPT_COMPLETION = "textDocument/didPartiallyAcceptCompletion";

export const DID_CHANGE_STATUS = "ghostcomplete/didChangeStatus";
export const DID_COMPLETE = "ghostcomplete/didComplete";
export const DID_FIND_BETTER = "ghostcomplete/didFindBetter";

export const COMMAND_ACCEPT = "ghostcomplete.accept";
export const COMMAND_STATS = "ghostcomplete.stats";
export const COMMAND_STATUS = "ghostcomplete.status";
export const COMMAND_EDIT = "ghostcomplete.edit";
/** Diagnostic: the server's copy of a document ({uri, version, length, lines, sha256}). */
export const COMMAND_DEBUG_DOCUMENT = "ghostcomplete.debugDocument";

export const CONFIGURATION_SECTION = "ghostcomplete";

export type StatusKind = "Normal" | "Warning" | "Error" | "Inactive";

/** ghostcomplete/didChangeStatus */
export interface StatusParams {
  kind: StatusKind;
  message: string;
  busy: boolean;
}

/** The answer to ghostcomplete.status. */
export interface StatusAnswer {
  kind: StatusKind;
  message: string;
  backend: string;
  /** What backend resolved to, in words (auto's choice, a hybrid's model). */
  chosen?: string;
  version: string;
}

/** The argument of ghostcomplete.edit (LSP positions, negotiated encoding). */
export interface EditParams {
  uri: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  instruction: string;
}

/** The answer to ghostcomplete.edit. */
export interface EditAnswer {
  applied: boolean;
  message: string;
}

/** ghostcomplete/didFindBetter: a request answered early has a better answer now. */
export interface BetterParams {
  uri: string;
  version: number;
  line: number;
  character: number;
}

/** Where the editor stands: its document (as the server names it), version and cursor. */
export interface EditorSpot {
  uri: string;
  version: number;
  line: number;
  character: number;
}

/** A didFindBetter payload, checked; undefined when malformed. */
export function parseBetter(raw: unknown): BetterParams | undefined {
  if (typeof raw !== "object" || raw === null) {
    return undefined;
  }
  const { uri, version, position } = raw as Record<string, unknown>;
  if (typeof uri !== "string" || typeof version !== "number" || typeof position !== "object" || position === null) {
    return undefined;
  }
  const { line, character } = position as Record<string, unknown>;
  if (typeof line !== "number" || typeof character !== "number") {
    return undefined;
  }
  return { uri, version, line, character };
}

/** Whether to ask for the better suggestion: the editor is still where the request was made
 * (same document, version and cursor); anywhere else the next keystroke finds it. */
export function shouldAskAgain(better: BetterParams | undefined, spot: EditorSpot | undefined): boolean {
  return (
    better !== undefined &&
    spot !== undefined &&
    better.uri === spot.uri &&
    better.version === spot.version &&
    better.line === spot.line &&
    better.character === spot.character
  );
}

const KINDS: ReadonlySet<string> = new Set(["Normal", "Warning", "Error", "Inactive"]);

/** A didChangeStatus payload, checked: anything malformed reads as a Warning that says so. */
export function parseStatus(raw: unknown): StatusParams {
  if (typeof raw === "object" && raw !== null) {
    const { kind, message, busy } = raw as Record<string, unknown>;
    if (typeof kind === "string" && KINDS.has(kind)) {
      return {
        kind: kind as StatusKind,
        message: typeof message === "string" ? message : "",
        busy: busy === true,
      };
    }
  }
  return { kind: "Warning", message: `unreadable status from the server: ${JSON.stringify(raw)}`, busy: false };
}

/** An edit answer, checked. */
export function parseEditAnswer(raw: unknown): EditAnswer {
  if (typeof raw === "object" && raw !== null) {
    const { applied, message } = raw as Record<string, unknown>;
    return { applied: applied === true, message: typeof message === "string" ? message : "" };
  }
  return { applied: false, message: "the server gave no answer" };
}
