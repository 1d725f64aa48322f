"""Labels are not identity: anyone who may use the engine can label a container as yours.

Each test performs the attack on the real engine. Before seals, ptdesk adopted such a container:
it read its host key and token, kept the keys inside as permanent extra keys, installed your key
into it and handed out a working `ssh` command into it. Now only containers this PTDESK_HOME
sealed are adopted; the rest are listed read-only as unverified and given nothing.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.access import authorized_keys
from ptdesk.core.access.sshcheck import try_login
from ptdesk.core.base import keys, private_files
from ptdesk.core.base.models import LABEL_GPUS, LABEL_INSTANCE, LABEL_KIND, LABEL_MANAGED, LABEL_NAME, LABEL_OWNER
from ptdesk.core.base.names import current_user
from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.kinds.ssh import SSHD_CAPS
from tests.support.helpers import SSH_IMAGE

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py


def forge(engine: Engine, p: Ptdesk, name: str, labels: dict[str, str] | None = None) -> tuple[str, Path]:
    """What another engine user can do: ptdesk's own SSH image, the labels of one of your
    experiments, their own host key and their own key in authorized_keys. Returns (container id,
    the attacker's private key)."""
    attacker = keys.generate(comment="mallory")
    host = keys.generate(comment="forged-host")
    folder = p.home.parent / f"mallory-{uuid.uuid4().hex[:6]}"
    key_file = keys.write_keypair(private_files.ensure_private_dir(folder), attacker)
    labels = labels or {LABEL_MANAGED: "1", LABEL_INSTANCE: p.instance, LABEL_KIND: "ssh",
                        LABEL_OWNER: current_user(), LABEL_NAME: name, LABEL_GPUS: "0,1"}
    cid = engine.create(name=f"forged-{p.instance}-{uuid.uuid4().hex[:6]}", image=SSH_IMAGE, labels=labels,
                        environment={"PTDESK_UID": "1000", "PTDESK_GID": "1000"}, exposed=["22/tcp"],
                        host_config={"cap_drop": ["ALL"], "cap_add": list(SSHD_CAPS), "init": True,
                                     "port_bindings": {"22/tcp": ("127.0.0.1", None)}})
    engine.put_files(cid, "/", [
        FileSpec("etc/ssh/ssh_host_ed25519_key", host.private_pem, mode=0o600),
        FileSpec("etc/ssh/ssh_host_ed25519_key.pub", (host.public_line + "\n").encode(), mode=0o644),
        FileSpec(authorized_keys.AUTHORIZED_KEYS_PATH.lstrip("/"),
                 keys.authorized_keys_line(attacker.public_line).encode() + b"\n", mode=0o644)])
    engine.start(cid)
    return cid, key_file


def test_a_container_labelled_as_yours_is_listed_unverified_and_given_nothing(cli: Ptdesk, engine: Engine) -> None:
    cid, _ = forge(engine, cli, "bait")
    before = authorized_keys.read_authorized_keys(engine, cid)

    report = cli.json("reconcile")
    assert report["adopted"] == [] and report["unverified"] == ["bait"]
    seen = cli.listed()["bait"]
    assert seen["unverified"] is True and seen["ssh"] is None  # no connect line into it
    assert "bait" not in cli.records()  # nothing booked: no port, no GPUs, no record
    assert authorized_keys.read_authorized_keys(engine, cid) == before  # your key was not installed
    assert not cli.experiment_folder("bait").exists()  # nothing read back from it
    rc, out, err = cli.run("ls", "--all", subprocess_=True)
    line = next(ln for ln in out.splitlines() if ln.startswith("bait"))
    assert rc == 0 and "(unverified)" in line
    assert "not adopting" not in err and "sealed" not in err  # said once, by doctor: not on every command
    doctor = {c["name"]: c for c in cli.json("doctor")["checks"]}
    assert doctor["unverified"]["status"] == "warn" and "bait" in doctor["unverified"]["detail"]
    # What it claims books nothing: its label says GPUs 0,1, the engine gives it none.
    assert cli.json("ls", "--all")[0]["gpus"] == [0, 1] and cli.records() == set()


def test_a_copy_of_a_real_experiments_sealed_labels_does_not_verify(cli: Ptdesk, engine: Engine) -> None:
    """The seal covers the secrets inside (the host private key), not only the labels."""
    real = cli.new("ssh", "--name", "orig")
    labels = engine.inspect(real["id"])["Config"]["Labels"]
    assert labels.get("ptdesk.seal")
    engine.remove(real["id"], force=True)
    assert cli.json("reconcile")["released"] == ["orig"]
    forge(engine, cli, "orig", labels=dict(labels))
    report = cli.json("reconcile")
    assert report["adopted"] == [] and report["unverified"] == ["orig"]
    assert cli.listed()["orig"]["ssh"] is None


def test_owner_of_another_home_cannot_plant_an_experiment_on_you(cli: Ptdesk, tmp_path: Path) -> None:
    """`--owner carol` from alice's home: carol's ptdesk cannot prove alice's launch is hers, so it
    adopts nothing and installs no key; the experiment stays alice's to manage and hand out."""
    alice = type(cli)({**cli.env, "SUDO_USER": "alice"})
    made = alice.new("ssh", "--name", "for-carol", "--owner", "carol")
    carol = type(cli)({**cli.env, "SUDO_USER": "carol", "PTDESK_HOME": str(tmp_path / "carol-home")})
    seen = carol.listed()["for-carol"]
    assert seen["unverified"] is True and seen["ssh"] is None and carol.records() == set()
    text = authorized_keys.read_authorized_keys(Engine.connect(), made["id"])
    assert len(text.splitlines()) == 1  # only the key alice's ptdesk made for carol
    access = made["ssh"]
    host_key = " ".join(access["known_hosts"].split()[1:3])
    assert try_login(access["host"], access["port"], access["user"], Path(access["identity_file"]), host_key).ok
    assert alice.listed()["for-carol"].get("unverified") is None  # alice's store holds it: hers to manage
