// Loaded into code-server's Node with --require: the Host check code-server lacks (Jupyter has one).
// A web page elsewhere can point a DNS name at this port (DNS rebinding) and talk to it as its own
// origin; refusing every Host header that is not one of the names ptdesk knows the server by
// (written per experiment into HOSTS_FILE, root-owned) closes that, for HTTP and WebSocket alike.
// No readable list: everything is refused, never "anything goes".
"use strict";
const fs = require("fs");
const net = require("net");

const HOSTS_FILE = "/etc/ptdesk/code_hosts.json";
let allowed = new Set();
try {
  allowed = new Set(JSON.parse(fs.readFileSync(HOSTS_FILE, "utf8")).map((h) => String(h).toLowerCase()));
} catch (err) {
  // Not placed (code-server run by hand, or `--install-extension` at build time): refuse all.
}

function hostOf(header) {
  const value = String(header || "").trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(1, value.indexOf("]") > 0 ? value.indexOf("]") : undefined);
  return value.split(":")[0];
}

const emit = net.Server.prototype.emit;
net.Server.prototype.emit = function (event, req, second) {
  if ((event === "request" || event === "upgrade") && req && req.headers && !allowed.has(hostOf(req.headers.host))) {
    const body = "This server answers only to the names ptdesk gave it (Host check).\n";
    if (event === "request") {
      second.writeHead(403, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) });
      second.end(body);
    } else {
      second.end(`HTTP/1.1 403 Forbidden\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    return true;
  }
  return emit.apply(this, arguments);
};
