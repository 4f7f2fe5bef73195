// The status bar item's quick pick and the extension's own command ids. Pure.

/** Commands this extension contributes (the server's own ghostcomplete.accept/stats/status/
 * edit are registered by vscode-languageclient from the server's executeCommandProvider, so
 * these ids must differ from them). */
export const EXTENSION_COMMANDS = {
  editSelection: "ghostcomplete.editSelection",
  toggleCompletions: "ghostcomplete.toggleCompletions",
  showStats: "ghostcomplete.showStats",
  restartServer: "ghostcomplete.restartServer",
  showMenu: "ghostcomplete.showMenu",
  showLog: "ghostcomplete.showLog",
  acceptNextWord: "ghostcomplete.acceptNextWord",
} as const;

export interface MenuItem {
  label: string;
  description?: string;
  /** The command run when picked, with its arguments. */
  command: string;
  args?: unknown[];
}

export function menuItems(enabled: boolean): MenuItem[] {
  return [
    { label: "$(edit) Edit Selection…", description: "rewrite the selected code as instructed", command: EXTENSION_COMMANDS.editSelection },
    enabled
      ? { label: "$(circle-slash) Disable Completions", description: "completion.enabled = false", command: EXTENSION_COMMANDS.toggleCompletions }
      : { label: "$(check) Enable Completions", description: "completion.enabled = true", command: EXTENSION_COMMANDS.toggleCompletions },
    { label: "$(graph) Show Acceptance Stats", command: EXTENSION_COMMANDS.showStats },
    { label: "$(debug-restart) Restart Server", command: EXTENSION_COMMANDS.restartServer },
    { label: "$(output) Show Log", command: EXTENSION_COMMANDS.showLog },
    { label: "$(gear) Open Settings", command: "workbench.action.openSettings", args: ["@ext:ghostcomplete.ghostcomplete"] },
  ];
}
