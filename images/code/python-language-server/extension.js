// ptdesk's Python language server extension: starts pyright's language server (from npm, MIT,
// usable in any editor, unlike Pylance) in the extension host's own Node and connects it to the
// editor through vscode-languageclient. Everything it needs is inside the extension: no download.
"use strict";
const path = require("path");
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const server = path.join(context.extensionPath, "node_modules", "pyright", "langserver.index.js");
  const run = { module: server, transport: TransportKind.ipc };
  const pythonPath = vscode.workspace.getConfiguration("ptdeskPython").get("pythonPath") || "python3";
  client = new LanguageClient("ptdeskPython", "Python language server (pyright)",
    { run, debug: run },
    {
      documentSelector: [{ scheme: "file", language: "python" }, { scheme: "untitled", language: "python" }],
      // pyright asks for python.* settings; answer with the experiment's interpreter.
      middleware: {
        workspace: {
          configuration: (params, token, next) => {
            const answers = next(params, token);
            return Promise.resolve(answers).then((values) => params.items.map((item, i) => {
              const value = Array.isArray(values) ? values[i] : undefined;
              if (item.section === "python") return Object.assign({}, value || {}, { pythonPath });
              return value;
            }));
          },
        },
      },
    });
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
