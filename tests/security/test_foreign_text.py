"""Text from containers ptdesk did not make is printed with its control characters stripped: an
escape sequence in a foreign ptdesk.name label must not reach the reader's terminal."""

from __future__ import annotations

import uuid

from ptdesk.core.base.text import printable
from ptdesk.core.engine.client import Engine
from ptdesk.core.experiments.lifecycle import ContainerEvent
from tests.support.helpers import BASE_IMAGE, require_image, run_cli

ESCAPE = "\x1b]0;owned\x07\x1b[2J"


def _plant(engine: Engine, instance: str, name: str, owner: str) -> None:
    """What any engine user can do: a container with ptdesk's labels, whatever text they carry."""
    labels = {"ptdesk.managed": "1", "ptdesk.instance": instance, "ptdesk.kind": "ssh",
              "ptdesk.owner": owner, "ptdesk.name": name, "ptdesk.gpus": ""}
    engine.create(name=f"ptdesk-{instance}-planted-{uuid.uuid4().hex[:6]}", image=BASE_IMAGE,
                  labels=labels, command=["true"], host_config={})


def test_ls_strips_control_characters_from_a_foreign_label(ptdesk_env: dict[str, str], engine: Engine) -> None:
    require_image(engine, BASE_IMAGE)
    instance = ptdesk_env["PTDESK_INSTANCE"]
    _plant(engine, instance, f"mallory{ESCAPE}box", "mallory")
    _plant(engine, instance, f"orphan{ESCAPE}", f"bad{ESCAPE}owner")
    for args in (["ls", "--all"],):
        rc, out, err = run_cli(args, ptdesk_env)
        assert rc == 0, err
        assert "\x1b" not in out and "\x07" not in out, repr(out)
        assert "mallory" in out and "orphan" in out
    rc, out, err = run_cli(["reconcile"], ptdesk_env)  # lists the orphan by its label
    assert rc == 0 and "orphan" in out, err
    assert "\x1b" not in out + err and "\x07" not in out + err, repr(out + err)


def test_events_of_foreign_containers_are_printable() -> None:
    raw = {"Action": "start", "timeNano": 1, "Actor": {"ID": "abc", "Attributes": {
        "ptdesk.name": f"x{ESCAPE}", "ptdesk.owner": f"eve{ESCAPE}", "ptdesk.kind": "ssh\x9b"}}}
    event = ContainerEvent.from_docker(raw)
    assert event is not None
    assert all(s.isprintable() for s in (event.name, event.owner or "", event.kind or ""))


def test_printable_keeps_ordinary_text() -> None:
    assert printable("alice-jupyter-1 é") == "alice-jupyter-1 é"
    assert printable("a\u202eb\nc") == "a?b?c"
