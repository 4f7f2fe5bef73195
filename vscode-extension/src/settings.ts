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
  "backend.onnx.model",
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
 * Settings that decide where text and keys go, and which files are never read: a repository's
 * .vscode/settings.json must not set them unless the user trusts the workspace. Mirrors the
 * server's RESTRICTED_SETTINGS (completion/workspace_trust.py); package.json lists them in
 * restrictedConfigurations.
 */
export const RESTRICTED_SETTINGS: readonly string[] = [
  "backend.http.url",
  "backend.http.apiKeyEnv",
  "backend.http.apiKey",
  "backend.http.headers",
  "backend.http.proxy",
  "backend.http.caBundle",
  "backend.http.verifyTls",
  "context.exclude",
];

/**
 * Top-level field of every settings tree sent to the server: whether the user trusts the
 * workspace. Without `true` the server ignores RESTRICTED_SETTINGS in workspace configuration.
 */
export const TRUST_FIELD = "workspaceTrusted";

/** Where a restricted setting is read from when the workspace is not trusted. */
export type UserLevelValue = (key: string) => unknown;

/** The user's own value of a setting (user settings, else the default), from `inspect`. */
export function userLevelValue(inspected: Inspected<unknown> | undefined): unknown {
  return inspected?.globalValue !== undefined ? inspected.globalValue : inspected?.defaultValue;
}

/**
 * The server's settings from the `ghostcomplete` configuration section: the same tree
 * (camelCase, nested like the server's Settings) minus the client-only sections, plus
 * TRUST_FIELD. In an untrusted workspace the RESTRICTED_SETTINGS come from `userValue` (user
 * settings) whatever the workspace says. Used for initializationOptions, workspace/configuration
 * answers and pushes alike.
 */
export function buildInitializationOptions(
  configuration: unknown,
  trusted = false,
  userValue: UserLevelValue = () => undefined,
): { [key: string]: Json } {
  const tree = plainConfiguration(configuration);
  for (const section of CLIENT_ONLY_SECTIONS) {
    delete tree[section];
  }
  if (!trusted) {
    for (const key of RESTRICTED_SETTINGS) {
      const value = plainValue(userValue(key));
      setOrDelete(tree, key.split("."), value);
    }
  }
  tree[TRUST_FIELD] = trusted;
  return tree;
}

function plainValue(value: unknown): Json | undefined {
  return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as Json);
}

function setOrDelete(tree: { [key: string]: Json }, parts: string[], value: Json | undefined): void {
  const [head, ...rest] = parts;
  if (head === undefined) {
    return;
  }
  if (rest.length === 0) {
    if (value === undefined) {
      delete tree[head];
    } else {
      tree[head] = value;
    }
    return;
  }
  let child = tree[head];
  if (typeof child !== "object" || child === null || Array.isArray(child)) {
    if (value === undefined) {
      return;
    }
    child = {};
    tree[head] = child;
  }
  setOrDelete(child, rest, value);
}

/**
 * Whether a configuration change needs a restart; `affects` is `event.affectsConfiguration`.
 * In an untrusted workspace the server takes RESTRICTED_SETTINGS from initializationOptions
 * only, so a change to one of them restarts it.
 */
export function needsRestart(affects: (section: string) => boolean, trusted = true): boolean {
  const keys = trusted ? RESTART_SETTINGS : [...RESTART_SETTINGS, ...RESTRICTED_SETTINGS];
  return keys.some((key) => affects(`ghostcomplete.${key}`));
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
