// ptdesk's Python language server extension: starts pyright's language server (from npm, MIT,
// usable in any editor, unlike Pylance) in the extension host's own Node and connects it to the
// editor through vscode-languageclient. Everything it needs is inside the extension: no download.
// pyright finds the experiment's Python itself (python3 on the container's PATH: the Jupyter
// image's environment), so no interpreter setting is needed.
"use strict";
const path = require("path");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const server = path.join(context.extensionPath, "node_modules", "pyright", "langserver.index.js");
  const run = { module: server, transport: TransportKind.stdio };
  client = new LanguageClient("ptdeskPython", "Python language server (pyright)",
    { run, debug: run },
    {
      documentSelector: [{ scheme: "file", language: "python" }, { scheme: "untitled", language: "python" }],
      // pyright reads its settings only once told they changed (as pyright's own VS Code client does).
      synchronize: { configurationSection: ["python", "pyright"] },
    });
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
