// vscode-languageclient is CommonJS and calls require("vscode") itself; the extension's own
// `import "vscode"` goes through vitest's alias (vitest.config.mts). Both must get the same
// fake (test/fakeVscode.ts): patch Node's Module._load for the first. Names the fake does not
// model read as an empty class, so the client library's module-level `class X extends
// vscode.CompletionItem` still loads.
import Module from "node:module";

import * as fakeVscode from "./fakeVscode";

class Unmodelled {
  constructor(..._args: unknown[]) {}
}

const moduleProxy = new Proxy(fakeVscode, {
  get: (target, property) => (property in target ? (target as Record<string | symbol, unknown>)[property] : Unmodelled),
});

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;
const loader = Module as unknown as { _load: Load };
const original = loader._load;
loader._load = function (this: unknown, request: string, parent: unknown, isMain: boolean): unknown {
  return request === "vscode" ? moduleProxy : original.call(this, request, parent, isMain);
};
