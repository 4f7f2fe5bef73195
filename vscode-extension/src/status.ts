// What the status bar item shows. Pure: extension.ts copies the result onto the item.

import type { StatusParams } from "./protocol";

/** The client's own state, next to what the server last said. */
export type ClientState =
  | { phase: "starting" }
  | { phase: "running"; status: StatusParams }
  | { phase: "stopped"; reason: string };

export interface StatusView {
  text: string;
  tooltip: string;
  /** A theme color id for the item's background, or undefined. */
  background: "statusBarItem.errorBackground" | "statusBarItem.warningBackground" | undefined;
  /** One word for the quick pick's title and the tests. */
  summary: "starting" | "ready" | "working" | "warning" | "error" | "disabled for this file" | "off" | "stopped";
}

const NAME = "ghostcomplete";

/**
 * The status bar view of the client state. `enabled` is completion.enabled: off overrides a
 * Normal status (the server still runs, but offers nothing).
 */
export function presentStatus(state: ClientState, enabled: boolean, detail = ""): StatusView {
  const suffix = detail ? `\n${detail}` : "";
  if (state.phase === "starting") {
    return { text: `$(sync~spin) ${NAME}`, tooltip: `${NAME}: starting the server…${suffix}`, background: undefined, summary: "starting" };
  }
  if (state.phase === "stopped") {
    return {
      text: `$(debug-disconnect) ${NAME}`,
      tooltip: `${NAME}: server stopped: ${state.reason}${suffix}\nClick for actions.`,
      background: "statusBarItem.errorBackground",
      summary: "stopped",
    };
  }
  const { kind, message, busy } = state.status;
  const said = message ? `: ${message}` : "";
  if (kind === "Error") {
    return { text: `$(error) ${NAME}`, tooltip: `${NAME} error${said}${suffix}\nClick for actions.`, background: "statusBarItem.errorBackground", summary: "error" };
  }
  if (kind === "Warning") {
    return { text: `$(warning) ${NAME}`, tooltip: `${NAME} warning${said}${suffix}\nClick for actions.`, background: "statusBarItem.warningBackground", summary: "warning" };
  }
  if (!enabled) {
    return { text: `$(circle-slash) ${NAME}`, tooltip: `${NAME}: completions are off (Toggle Completions turns them on)${suffix}`, background: undefined, summary: "off" };
  }
  if (kind === "Inactive") {
    return { text: `$(circle-slash) ${NAME}`, tooltip: `${NAME}: disabled for this file${said}${suffix}`, background: undefined, summary: "disabled for this file" };
  }
  if (busy) {
    return { text: `$(loading~spin) ${NAME}`, tooltip: `${NAME}: working${said}${suffix}`, background: undefined, summary: "working" };
  }
  return { text: `$(sparkle) ${NAME}`, tooltip: `${NAME}: ready${said}${suffix}`, background: undefined, summary: "ready" };
}
