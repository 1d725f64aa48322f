"""Jupyter experiment containers, end to end: the real CLI, engine, JupyterLab, REST API and kernel
websocket. One container (module-scoped) serves the tests that only use it; removal gets its own.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import websocket

from ptdesk.core.engine.client import Engine
from tests.support.helpers import JUPYTER_IMAGE, wait_until

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

JUPYTER_FIELDS = {"url", "host", "port", "token", "tunnel"}  # tunnel: the laptop's ssh -L (loopback bind)
TOP_FIELDS = {"name", "id", "kind", "owner", "image", "status", "gpus", "jupyter", "environment",
              "workstation"}
GIB = 1024**3
# Every API a visitor without the token could abuse: files, kernels (code execution), terminals...
PROTECTED_GETS = ["api/status", "api/contents", "api/kernels", "api/sessions", "api/terminals", "api/kernelspecs",
                  "api/me", "api/config/notebook", "api/nbconvert", "api/events/subscribe",
                  "lab/api/settings", "lab/api/workspaces"]


@pytest.fixture(scope="module")
def lab(module_desk: Ptdesk) -> dict:
    """One Jupyter experiment with the default limits and workspace, shared by the tests below."""
    return module_desk.new("jupyter", "--name", "lab")


def http(access: dict, path: str, method: str = "GET", body: Any = None, token: str | None = None,
         follow: bool = True) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the server; (status, headers, body) whatever the status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{access['host']}:{access['port']}/{path}", data=data, method=method)
    if token:
        request.add_header("Authorization", f"token {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_new_json_has_exactly_the_documented_fields(lab: dict, module_desk: Ptdesk) -> None:
    assert set(lab) == TOP_FIELDS
    assert lab["kind"] == "jupyter" and lab["name"] == "lab" and lab["status"] == "running"
    assert lab["gpus"] == [] and lab["image"] == JUPYTER_IMAGE and lab["owner"]
    access = lab["jupyter"]
    assert set(access) == JUPYTER_FIELDS
    assert access["host"] == "127.0.0.1" and isinstance(access["port"], int) and len(access["token"]) >= 32
    assert access["url"] == f"http://127.0.0.1:{access['port']}/lab?token={access['token']}"
    assert module_desk.listed(all=False)["lab"] == lab
    assert module_desk.listed(all=True)["lab"] == lab


@pytest.mark.parametrize("path", PROTECTED_GETS)
def test_every_api_refuses_a_visitor_without_the_token(lab: dict, path: str) -> None:
    status, _, _ = http(lab["jupyter"], path)
    assert status == 403


def test_no_kernel_without_the_token(lab: dict) -> None:
    access = lab["jupyter"]
    assert http(access, "api/kernels", "POST", {"name": "python3"})[0] == 403
    assert http(access, "api/kernels", "POST", {"name": "python3"}, token="not-" + access["token"])[0] == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://{access['host']}:{access['port']}/api/kernels/{uuid.uuid4()}/channels",
                                    timeout=30)
    assert refused.value.status_code in (403, 404)


def test_lab_redirects_a_visitor_to_the_login_page(lab: dict) -> None:
    status, headers, _ = http(lab["jupyter"], "lab", follow=False)
    assert status == 302 and headers["Location"].split("?")[0].endswith("/login")
    # With the printed URL (token in the query, as a browser opens it) the page itself loads.
    status, _, body = http(lab["jupyter"], lab["jupyter"]["url"].split("/", 3)[3])
    assert status == 200 and b"JupyterLab" in body


def execute(access: dict, kernel_id: str, code: str, timeout: float = 60) -> str:
    """Run code through the kernel websocket (Jupyter's JSON protocol); return what it printed."""
    ws = websocket.create_connection(
        f"ws://{access['host']}:{access['port']}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
        header=[f"Authorization: token {access['token']}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        printed: list[str] = []
        while True:  # iopub: stream output, then the kernel going idle for our request
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id or message.get("channel") != "iopub":
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream" and content["name"] == "stdout":
                printed.append(content["text"])
            elif kind == "error":
                raise AssertionError(f"the kernel raised {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed)
    finally:
        ws.close()


def test_kernel_round_trip_runs_code_as_a_normal_user(lab: dict, module_desk: Ptdesk) -> None:
    access, token = lab["jupyter"], lab["jupyter"]["token"]
    status, _, body = http(access, "api/kernels", "POST", {"name": "python3"}, token=token)
    assert status == 201, body
    kernel_id = json.loads(body)["id"]
    try:
        uid = execute(access, kernel_id, "import os; print(os.getuid())").strip()
        assert uid != "0" and uid == str(module_desk.config.uid)
    finally:
        assert http(access, f"api/kernels/{kernel_id}", "DELETE", token=token)[0] == 204
    _, _, body = http(access, "api/kernels", token=token)
    assert kernel_id not in {k["id"] for k in json.loads(body)}


def test_a_server_the_notebook_starts_on_loopback_is_reached_through_the_proxy_with_the_token(lab: dict) -> None:
    """jupyter-server-proxy: TensorBoard-style servers on the container's 127.0.0.1 answer at
    /proxy/PORT/ behind the same token, and not at all without it."""
    access, token = lab["jupyter"], lab["jupyter"]["token"]
    status, _, body = http(access, "api/kernels", "POST", {"name": "python3"}, token=token)
    assert status == 201, body
    kernel_id = json.loads(body)["id"]
    try:
        execute(access, kernel_id, (
            "import pathlib, subprocess, sys\n"
            "root = pathlib.Path('/tmp/served'); root.mkdir(exist_ok=True)\n"
            "(root / 'index.html').write_text('tensorboard-stand-in')\n"
            "subprocess.Popen([sys.executable, '-m', 'http.server', '6006', '--bind', '127.0.0.1'], cwd=root,\n"
            "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)\n"))
        page = wait_until(lambda: (r := http(access, "proxy/6006/", token=token))[0] == 200 and r[2],
                          timeout=30, message="the proxied server's page")
        assert page == b"tensorboard-stand-in"
        # The same URL as a browser opens it: the token in the query string.
        assert http(access, f"proxy/6006/?token={token}")[0] == 200
        # Without the token (or with a wrong one): a browser is sent to the login page, anything else gets 403.
        status, headers, _ = http(access, "proxy/6006/", follow=False)
        assert status == 302 and headers["Location"].split("?")[0].endswith("/login")
        assert http(access, "proxy/6006/", token="not-" + token, follow=False)[0] in (302, 403)
        assert http(access, "proxy/6006/", "POST", {}, follow=False)[0] == 403
        # Only the container's own loopback is proxied, not a name of the proxy's choosing.
        assert http(access, "proxy/172.17.0.1:6006/", token=token)[0] == 403
    finally:
        http(access, f"api/kernels/{kernel_id}", "DELETE", token=token)


def test_notebook_written_through_the_api_belongs_to_the_host_user(lab: dict, module_desk: Ptdesk) -> None:
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                "cells": [{"cell_type": "code", "id": "c1", "source": "print('hi')", "metadata": {},
                           "outputs": [], "execution_count": None}]}
    status, _, body = http(lab["jupyter"], "api/contents/probe.ipynb", "PUT",
                           {"type": "notebook", "format": "json", "content": notebook},
                           token=lab["jupyter"]["token"])
    assert status == 201, body
    on_host = module_desk.config.workspaces / "lab" / "probe.ipynb"
    saved = json.loads(on_host.read_text())["cells"][0]["source"]
    assert "".join(saved) == "print('hi')"  # nbformat may store sources as a list of lines
    config = module_desk.config
    assert (on_host.stat().st_uid, on_host.stat().st_gid) == (config.uid, config.gid)
    assert on_host.stat().st_uid != 0


def test_token_is_nowhere_in_the_engine_or_the_logs(lab: dict, engine: Engine, module_desk: Ptdesk) -> None:
    token = lab["jupyter"]["token"]
    # A browser-style visit with the token in the URL, so the server has had the chance to log it.
    assert http(lab["jupyter"], f"api/status?token={token}")[0] == 200
    assert token not in json.dumps(engine.inspect(lab["id"]))
    everything = engine.api.logs(lab["id"], stdout=True, stderr=True, tail="all").decode(errors="replace")
    assert "/api/status" in everything  # the visit was logged, without its token
    assert token not in everything
    assert token not in module_desk.ok("logs", "lab", "--tail", "all")
    # Inside, only the Jupyter user can read it; its host copy is readable by the owner only.
    rc, out = engine.exec(lab["id"], ["stat", "-c", "%a %u", "/etc/ptdesk/jupyter_token"])
    assert rc == 0 and out.decode().split() == ["400", str(module_desk.config.uid)]
    token_file = module_desk.experiment_folder("lab") / "jupyter_token"
    assert token_file.read_text() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700


def test_jupyter_runs_as_the_host_user_not_root(lab: dict, engine: Engine, module_desk: Ptdesk) -> None:
    config = module_desk.config
    assert engine.inspect(lab["id"])["Config"]["User"] == f"{config.uid}:{config.gid}"
    top = engine.api.top(lab["id"], ps_args="-eo pid,uid,args")  # docker top needs the pid column
    uids = {row[1] for row in top["Processes"]}
    assert uids == {str(config.uid)}, top
    assert any("jupyter-lab" in row[2] for row in top["Processes"])


def test_container_is_hardened_without_any_capability(lab: dict, engine: Engine, module_desk: Ptdesk) -> None:
    data = engine.inspect(lab["id"])
    host = data["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Privileged"] is False and host["Init"] is True
    # The configured defaults (CPUs capped at what the machine has).
    limits = module_desk.config.limits
    assert host["PidsLimit"] == limits.pids
    assert host["Memory"] == 16 * GIB == host["MemorySwap"]
    assert host["NanoCpus"] == int(min(limits.cpus, float(os.cpu_count() or 1)) * 1e9)
    assert host["ShmSize"] == 8 * GIB
    assert host["NetworkMode"] != "host" and host["PidMode"] == "" and host["IpcMode"] != "host"
    published = [b for bs in data["NetworkSettings"]["Ports"].values() for b in (bs or [])]
    assert published and all(b["HostIp"] == "127.0.0.1" for b in published)
    assert {int(b["HostPort"]) for b in published} == {lab["jupyter"]["port"]}
    labels = data["Config"]["Labels"]
    assert labels["ptdesk.managed"] == "1" and labels["ptdesk.kind"] == "jupyter"
    assert labels["ptdesk.name"] == "lab" and labels["ptdesk.instance"] == module_desk.instance


def test_rm_removes_the_token_record_and_port(cli: Ptdesk, engine: Engine) -> None:
    exp = cli.new("jupyter", "--name", "gone")
    token_file = cli.experiment_folder("gone") / "jupyter_token"
    assert token_file.read_text() == exp["jupyter"]["token"]
    assert not cli.port_free(exp["jupyter"]["port"])
    assert cli.fails("rm", "gone")[0] == "ptdesk: 'gone' is running."
    assert cli.ok("rm", "--force", "gone").strip() == "gone removed."
    assert not token_file.exists()
    cli.assert_removed(engine, exp, exp["jupyter"]["port"], owner_key=False)
