// node test/print-settings.cjs out/extension.js '<user settings JSON>' <workspace folder>
//
// Loads the extension's bundle under a stand-in for the `vscode` module and prints what the
// extension would start and send: {initializationOptions, server}. getConfiguration gives the
// manifest's contributed defaults with the user's values (dotted keys) on top, as VS Code
// does. tests/test_vscode_e2e.py feeds the result to the real server.
const fs = require("fs");
const Module = require("module");
const path = require("path");

const [extension, userJson, folder] = process.argv.slice(2);
const manifest = JSON.parse(fs.readFileSync(path.join(path.dirname(extension), "..", "package.json"), "utf8"));
const values = {};
for (const group of manifest.contributes.configuration) {
  for (const [key, schema] of Object.entries(group.properties)) {
    values[key] = schema.default ?? null;
  }
}
Object.assign(values, JSON.parse(userJson));

function getConfiguration(section) {
  const tree = {};
  for (const [key, value] of Object.entries(values)) {
    if (!key.startsWith(`${section}.`)) continue;
    const parts = key.slice(section.length + 1).split(".");
    let node = tree;
    for (const part of parts.slice(0, -1)) node = node[part] ??= {};
    node[parts[parts.length - 1]] = value;
  }
  Object.defineProperty(tree, "get", { value: (key) => key.split(".").reduce((node, part) => node?.[part], tree) });
  return tree;
}

class Inert {}
const fake = new Proxy({ workspace: { getConfiguration } }, { get: (target, name) => (name in target ? target[name] : Inert) });
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? fake : load.call(this, request, ...rest);
};

const ext = require(path.resolve(extension));
const configuration = getConfiguration("ghostcomplete");
const isExecutable = (file) => {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
};
const server = ext.resolveServerCommand({
  configured: configuration.get("server.command"),
  folders: [folder],
  trusted: true,
  platform: process.platform,
  isExecutable,
  which: (program) => ext.whichOn(program, process.env.PATH, process.platform, isExecutable),
});
process.stdout.write(
  JSON.stringify({
    // As in a trusted workspace: these values are all user settings anyway.
    initializationOptions: ext.buildInitializationOptions(configuration, true),
    server: ext.buildServerOptions(server, configuration.get("server.verbose") === true, undefined),
  }),
);
