// Entry point: activate/deactivate. Also exports the pure functions that tests outside
// VS Code call on the bundle (tests/test_vscode_e2e.py runs buildInitializationOptions and
// resolveServerCommand from out/extension.js with node).

import type * as vscode from "vscode";

import { Controller } from "./controller";

export {
  buildInitializationOptions,
  needsRestart,
  toggleCompletions,
  userLevelValue,
  CLIENT_ONLY_SECTIONS,
  RESTART_SETTINGS,
  RESTRICTED_SETTINGS,
  TRUST_FIELD,
} from "./settings";
export { resolveServerCommand, whichOn, venvExecutable } from "./serverCommand";
export { buildServerOptions, DOCUMENT_SCHEMES } from "./controller";
export { statsCommand } from "./report";

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<Controller> {
  controller = new Controller();
  context.subscriptions.push({ dispose: () => void controller?.dispose() });
  await controller.activate();
  return controller;
}

export async function deactivate(): Promise<void> {
  const running = controller;
  controller = undefined;
  await running?.dispose();
}
