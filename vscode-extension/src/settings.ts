// Settings: what the server gets (initializationOptions, workspace/configuration answers,
// didChangeConfiguration pushes) and which changes need a restart. Pure functions only.

/** Sections of `ghostcomplete.*` read by the extension itself; the server never sees them. */
export const CLIENT_ONLY_SECTIONS: readonly string[] = ["server", "trace"];

/**
 * Changing one of these restarts the server: the command and its flags, and what loads a
 * model (a restart frees the old model's memory, GPU memory included, for certain).
 * Everything else is pushed to the running server with workspace/didChangeConfiguration.
 */
export const RESTART_SETTINGS: readonly string[] = [
  "server.command",
  "server.verbose",
  "backend.kind",
  "backend.onnx.path",
  "backend.onnx.file",
  "backend.onnx.quantized",
  "backend.onnx.provider",
  "backend.onnx.threads",
];

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A plain JSON copy of a configuration object (VS Code's WorkspaceConfiguration holds the
 * values as properties next to get/has/inspect/update; those functions are dropped).
 */
export function plainConfiguration(configuration: unknown): { [key: string]: Json } {
  const copy = JSON.parse(JSON.stringify(configuration ?? {})) as unknown;
  return typeof copy === "object" && copy !== null && !Array.isArray(copy)
    ? (copy as { [key: string]: Json })
    : {};
}

/**
 * The server's settings from the `ghostcomplete` configuration section: the same tree
 * (camelCase, nested like the server's Settings) minus the client-only sections.
 * Used for initializationOptions, workspace/configuration answers and pushes alike.
 */
export function buildInitializationOptions(configuration: unknown): { [key: string]: Json } {
  const tree = plainConfiguration(configuration);
  for (const section of CLIENT_ONLY_SECTIONS) {
    delete tree[section];
  }
  return tree;
}

/** Whether a configuration change needs a restart; `affects` is `event.affectsConfiguration`. */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return RESTART_SETTINGS.some((key) => affects(`ghostcomplete.${key}`));
}

export type ConfigurationLevel = "global" | "workspace";

/** What `WorkspaceConfiguration.inspect` tells about one setting (the fields used here). */
export interface Inspected<T> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
}

/**
 * Toggle Completions: the new value of completion.enabled and the level to write it at.
 * The level that decides the current value is the one changed (a workspace setting would
 * otherwise hide a global change); with nothing set, the workspace when one is open, else the
 * user settings.
 */
export function toggleCompletions(
  inspected: Inspected<boolean> | undefined,
  hasWorkspace: boolean,
): { value: boolean; level: ConfigurationLevel } {
  const levels: [ConfigurationLevel, boolean | undefined][] = [
    ["workspace", inspected?.workspaceValue],
    ["global", inspected?.globalValue],
  ];
  for (const [level, value] of levels) {
    if (typeof value === "boolean") {
      return { value: !value, level };
    }
  }
  const current = inspected?.defaultValue ?? true;
  return { value: !current, level: hasWorkspace ? "workspace" : "global" };
}
