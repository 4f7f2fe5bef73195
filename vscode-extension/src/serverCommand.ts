// Which command starts the server. Pure: the file system and PATH come in as functions.

import * as path from "node:path";

export interface ServerCommand {
  /** The program to run. */
  command: string;
  /** Arguments before the subcommand (`serve`, `stats`), e.g. `-m ghostcomplete.server.cli`. */
  args: string[];
  /** Where it came from, for the log and the status tooltip. */
  source: "setting" | "workspace .venv" | "PATH";
}

export interface CommandLookup {
  /** `ghostcomplete.server.command`: a string, a list of strings, or nothing. */
  configured: unknown;
  /** Workspace folder paths, in order. */
  folders: readonly string[];
  /** Whether the workspace is trusted: its own .venv is only run when it is. */
  trusted: boolean;
  platform: NodeJS.Platform;
  /** Whether a file exists and can be run. */
  isExecutable: (file: string) => boolean;
  /** The PATH lookup of a program name (`which`), or undefined. */
  which: (program: string) => string | undefined;
}

export class ServerNotFound extends Error {}

/** The executable's path inside a virtual environment. */
export function venvExecutable(folder: string, platform: NodeJS.Platform): string {
  return platform === "win32"
    ? path.win32.join(folder, ".venv", "Scripts", "ghostcomplete.exe")
    : path.posix.join(folder, ".venv", "bin", "ghostcomplete");
}

/**
 * The server command, trying in order: the setting, `.venv/bin/ghostcomplete` in a workspace
 * folder (trusted workspaces only), `ghostcomplete` on PATH. Throws ServerNotFound with a
 * message that says what was tried.
 */
export function resolveServerCommand(lookup: CommandLookup): ServerCommand {
  const configured = lookup.configured;
  if (typeof configured === "string" && configured.trim() !== "") {
    return { command: checkedProgram(configured.trim(), lookup), args: [], source: "setting" };
  }
  if (Array.isArray(configured) && configured.length > 0) {
    if (!configured.every((part): part is string => typeof part === "string" && part !== "")) {
      throw new ServerNotFound(
        `ghostcomplete.server.command must be a string or a list of non-empty strings, not ${JSON.stringify(configured)}`,
      );
    }
    const [command, ...args] = configured;
    return { command: checkedProgram(command as string, lookup), args, source: "setting" };
  }
  if (configured !== null && configured !== undefined && configured !== "" && !Array.isArray(configured)) {
    throw new ServerNotFound(
      `ghostcomplete.server.command must be a string or a list of strings, not ${JSON.stringify(configured)}`,
    );
  }
  const tried: string[] = [];
  if (lookup.trusted) {
    for (const folder of lookup.folders) {
      const candidate = venvExecutable(folder, lookup.platform);
      if (lookup.isExecutable(candidate)) {
        return { command: candidate, args: [], source: "workspace .venv" };
      }
      tried.push(candidate);
    }
  }
  const program = lookup.platform === "win32" ? "ghostcomplete.exe" : "ghostcomplete";
  const onPath = lookup.which(program);
  if (onPath !== undefined) {
    return { command: onPath, args: [], source: "PATH" };
  }
  tried.push(`${program} on PATH`);
  const untrusted = lookup.trusted ? "" : " (the workspace is not trusted, so its .venv was not tried)";
  throw new ServerNotFound(
    `ghostcomplete server not found: tried ${tried.join(", ")}${untrusted}. ` +
      "Install it (pip install ghostcomplete) or set ghostcomplete.server.command.",
  );
}

/** The configured program, checked: a path must be an executable file, a bare name must be
 * on PATH (found here, so that a typo is one clear message, not a failed spawn). */
function checkedProgram(program: string, lookup: CommandLookup): string {
  if (program.includes("/") || program.includes("\\")) {
    if (!lookup.isExecutable(program)) {
      throw new ServerNotFound(`ghostcomplete.server.command: ${program} is not an executable file`);
    }
    return program;
  }
  const found = lookup.which(program);
  if (found === undefined) {
    throw new ServerNotFound(`ghostcomplete.server.command: ${program} is not on PATH`);
  }
  return found;
}

/** `which`: the first PATH entry holding an executable `program`. */
export function whichOn(
  program: string,
  pathVariable: string | undefined,
  platform: NodeJS.Platform,
  isExecutable: (file: string) => boolean,
): string | undefined {
  const join = platform === "win32" ? path.win32.join : path.posix.join;
  const separator = platform === "win32" ? ";" : ":";
  for (const directory of (pathVariable ?? "").split(separator)) {
    if (directory === "") {
      continue;
    }
    const candidate = join(directory, program);
    if (isExecutable(candidate)) {
      return candidate;
    }
  }
  return undefined;
}
