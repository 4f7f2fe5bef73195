import { fileURLToPath } from "node:url";

import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: [{ find: /^vscode$/, replacement: fileURLToPath(new URL("./test/fakeVscode.ts", import.meta.url)) }],
  },
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/setup.ts"],
    testTimeout: 20_000,
  },
});
