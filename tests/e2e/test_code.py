"""VS Code in the browser (the code kind), end to end: the real CLI and engine, the real code-server,
and a real browser (Debian's Chromium driven by Playwright) that logs in, edits and saves a file in
/workspace and sees the Python language server's diagnostic. One code container (module-scoped)
serves every test here; one SSH experiment beside it plays the other experiment.

PTDESK_CODE_SCREENSHOT=FILE saves the browser's view of the editor there (docs/code-editor.png).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from conftest import Ptdesk

from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.recorded import LABEL_FINGERPRINT
from ptdesk.core.kinds import code_http, jupyter_tls
from ptdesk.core.kinds.code import CODE
from ptdesk.core.workstation import Workstation
from tests.support.helpers import CODE_IMAGE, JUPYTER_IMAGE, require_image, wait_until

CHROMIUM = "/usr/bin/chromium"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"  # what scripts/test-images builds with (cache hits)
CODE_FIELDS = {"url", "host", "port", "password", "tunnel"}
MARK = "saved from the browser by ptdesk's test"
EDITOR = ".editor-group-container .monaco-editor"  # the file's editor (the chat box is an editor too)


@pytest.fixture(scope="module")
def editor(module_desk: Ptdesk, engine: Engine) -> dict:
    """One code experiment with a text file and a Python file with a type error in its workspace."""
    require_image(engine, CODE_IMAGE)
    experiment = module_desk.new("code", "--name", "editor")
    config = module_desk.config
    folder = config.workspaces / "editor"
    for name, text in (("notes.txt", "first line\n"), ("hello.py", 'count: int = "three"\n')):
        (folder / name).write_text(text)
        os.chown(folder / name, config.uid, config.gid)  # the person's files, as the editor's user
    return experiment


def _at(experiment: dict) -> tuple[str, int]:
    return experiment["code"]["host"], experiment["code"]["port"]


def test_new_code_lists_its_url_and_password(editor: dict, module_desk: Ptdesk) -> None:
    assert editor["kind"] == "code" and editor["status"] == "running" and editor["image"] == CODE_IMAGE
    access = editor["code"]
    assert set(access) == CODE_FIELDS
    assert access["url"] == f"http://127.0.0.1:{access['port']}/?folder=/workspace"
    assert len(access["password"]) >= 32
    assert module_desk.listed()["editor"]["code"] == access
    line = next(x for x in module_desk.ok("ls").splitlines() if x.startswith("editor"))
    assert access["url"] in line  # the connect column


def test_a_real_browser_logs_in_edits_saves_and_sees_the_language_server(editor: dict, module_desk: Ptdesk) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium)")
    folder = module_desk.config.workspaces / "editor"
    access = editor["code"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(access["url"])
            # Without the password there is only the login page.
            page.wait_for_selector("input[name=password]", timeout=30_000)
            assert page.locator(".monaco-workbench").count() == 0
            page.fill("input[name=password]", access["password"])
            page.press("input[name=password]", "Enter")
            page.wait_for_selector(".monaco-workbench .explorer-folders-view", timeout=90_000)

            _open(page, "notes.txt")
            page.wait_for_selector(f"{EDITOR} .view-lines >> text=first line", timeout=30_000)
            page.click(f"{EDITOR} .view-lines")
            page.keyboard.press("Control+End")
            page.keyboard.type(MARK)
            page.keyboard.press("Control+S")
            # Saving waits for the extension host to start (seconds on a busy 2-core box).
            wait_until(lambda: MARK in (folder / "notes.txt").read_text(), timeout=90,
                       message="the saved text on the host")

            _open(page, "hello.py")
            # pyright's diagnostic, through ptdesk's extension: the squiggle, then its words on hover.
            page.wait_for_selector(f"{EDITOR} .squiggly-error", timeout=90_000)
            page.locator(f"{EDITOR} .view-line span", has_text="three").last.hover()
            hover = page.wait_for_selector(".monaco-hover-content >> text=/not assignable/", timeout=30_000)
            assert "int" in hover.inner_text()
            if shot := os.environ.get("PTDESK_CODE_SCREENSHOT"):
                page.screenshot(path=shot)
        finally:
            browser.close()


def _open(page, name: str) -> None:  # noqa: ANN001 - a Playwright page
    page.locator(f".explorer-folders-view .monaco-list-row[aria-label='{name}']").dblclick()
    page.wait_for_selector(f".tab.active[aria-label^='{name}']", timeout=30_000)


def test_without_the_password_nothing_opens(editor: dict) -> None:
    host, port = _at(editor)
    assert code_http.login(host, port, "not-the-password", None) is None
    page = code_http.workbench(host, port, None, None)
    assert page.status == 302 and "login" in page.headers.get("location", "")
    assert code_http.websocket_round_trip(host, port, None, None) is not None
    # The same requests with the session cookie get in (so the refusals above are refusals).
    cookie = code_http.login(host, port, editor["code"]["password"], None)
    assert cookie and code_http.workbench(host, port, cookie, None).status == 200
    assert code_http.websocket_round_trip(host, port, cookie, None) is None


def test_a_name_ptdesk_does_not_know_is_refused(editor: dict) -> None:
    """DNS rebinding: a page elsewhere points its own name at the port. Host check on HTTP and
    WebSocket alike; a WebSocket from another origin is refused even with the cookie."""
    host, port = _at(editor)
    assert code_http.call(host, port, "GET", "/login", None).status == 200
    evil = {"Host": f"evil.example:{port}"}
    assert code_http.call(host, port, "GET", "/login", None, headers=evil).status == 403
    cookie = code_http.login(host, port, editor["code"]["password"], None)
    assert code_http.websocket_round_trip(host, port, cookie, None, headers=evil) is not None
    other_origin = {"Origin": "http://evil.example"}
    assert code_http.websocket_round_trip(host, port, cookie, None, headers=other_origin) is not None


def test_another_experiment_cannot_reach_it(editor: dict, module_desk: Ptdesk, engine: Engine) -> None:
    other = module_desk.new("ssh", "--name", "other")
    target = next(iter(engine.inspect(editor["id"])["NetworkSettings"]["Networks"].values()))["IPAddress"]
    rc, out = engine.exec(other["id"], ["timeout", "5", "bash", "-c", f"echo > /dev/tcp/{target}/8080"])
    assert rc != 0, f"the editor of another experiment answered from inside the SSH one: {out!r}"


def test_the_password_stays_out_of_argv_env_labels_and_logs(editor: dict, engine: Engine) -> None:
    password = editor["code"]["password"]
    info = engine.inspect(editor["id"])
    exposed = json.dumps([info["Config"].get("Env"), info["Config"].get("Cmd"), info["Args"],
                          info["Config"].get("Labels")])
    assert password not in exposed
    rc, ps = engine.exec(editor["id"], ["sh", "-c", "cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ"])
    assert ps and password.encode() not in ps
    frames = engine.logs(editor["id"], tail=5000)
    try:
        assert password.encode() not in b"".join(frames)
    finally:
        frames.close()
    rc, mode = engine.exec(editor["id"], ["stat", "-c", "%a %u", "/etc/ptdesk/code-server.yaml"])
    assert rc == 0 and mode.decode().split() == ["400", info["Config"]["User"].split(":")[0]]
    host = info["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and "no-new-privileges:true" in host["SecurityOpt"]
    assert not host["Privileged"] and info["Config"]["User"] not in ("", "0", "root")


def test_idle_comes_from_code_servers_heartbeat(editor: dict, module_desk: Ptdesk) -> None:
    ws = Workstation(module_desk.config)
    try:
        record = ws.store.experiment("editor")
        assert record is not None
        seconds, how = CODE.idle(ws, record, editor["id"], time.time())
    finally:
        ws.close()
    assert how == "code-server lastHeartbeat" and seconds is not None and seconds >= 0
    report = module_desk.json("cull", "--idle", "1d", "--dry-run", "--json")
    states = {s["name"]: s for s in report["experiments"]}
    assert states["editor"]["detail"] == "code-server lastHeartbeat" and states["editor"]["idle_seconds"] is not None


def test_the_code_image_has_the_jupyter_images_python_environment(engine: Engine) -> None:
    def fingerprint(image: str) -> str | None:
        info = engine.image_info(image) or {}
        return (info.get("Config") or {}).get("Labels", {}).get(LABEL_FINGERPRINT)

    assert fingerprint(CODE_IMAGE) and fingerprint(CODE_IMAGE) == fingerprint(JUPYTER_IMAGE)


def test_beyond_loopback_it_serves_https_with_its_pinned_certificate(cli: Ptdesk, engine: Engine) -> None:
    require_image(engine, CODE_IMAGE)
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines()]
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address")
    address = addresses[0]
    access = cli.new("code", "--name", "tls", extra_env={"PTDESK_BIND_ADDRESS": address})["code"]
    port, cert = access["port"], Path(access["certificate"]).read_text()
    assert access["url"] == f"https://{address}:{port}/?folder=/workspace"
    served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((address, port)))
    assert served == ssl.PEM_cert_to_DER_cert(cert)
    assert access["certificate_fingerprint"] == jupyter_tls.fingerprint(cert)
    cookie = code_http.login(address, port, access["password"], cert)
    assert cookie and code_http.workbench(address, port, cookie, cert).status == 200
    assert code_http.websocket_round_trip(address, port, cookie, cert) is None
    assert code_http.call(address, port, "GET", "/login", cert, headers={"Host": f"evil.example:{port}"}).status == 403
    assert code_http.login(address, port, access["password"], None) is None  # no plain http on that port


def test_a_missing_image_says_how_to_build_it(cli: Ptdesk) -> None:
    missing = f"ptdesk-test-missing-{uuid.uuid4().hex[:8]}/code:latest"
    code, _, err = cli.run("new", "code", "--name", "nope", extra_env={"PTDESK_CODE_IMAGE": missing})
    assert code == 1 and missing in err and "ptdesk images build code" in err and "Traceback" not in err
    assert "nope" not in cli.listed()


def test_an_extension_that_does_not_install_fails_the_build_and_tags_nothing(cli: Ptdesk, engine: Engine,
                                                                             tmp_path: Path) -> None:
    """code-server refuses an extension made for a newer VS Code: one sentence naming the file, and
    no image under the tag (the layers before the extensions come from the test image's cache)."""
    require_image(engine, CODE_IMAGE)
    vsix = tmp_path / "future.vsix"
    with zipfile.ZipFile(vsix, "w") as archive:
        archive.writestr("extension/package.json", json.dumps(
            {"name": "future", "version": "1.0.0", "publisher": "team", "engines": {"vscode": "^99.0.0"}}))
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text(f'code_extensions = ["{vsix}"]\n')
    tag = f"ptdesk-test-{uuid.uuid4().hex[:8]}/code:latest"
    ca = ["--ca-bundle", HOST_CA] if Path(HOST_CA).is_file() and Path(HOST_CA).stat().st_size else []
    try:
        code, _, err = cli.run("images", "build", "code", *ca, extra_env={"PTDESK_CODE_IMAGE": tag})
        last = err.strip().splitlines()[-2:]
        assert code == 1 and "the extension file future.vsix (code_extensions entry 1) does not install" in last[0], \
            err[-2000:]
        assert "Nothing was tagged" in last[1] and not engine.image_exists(tag)
    finally:
        if engine.image_exists(tag):
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
