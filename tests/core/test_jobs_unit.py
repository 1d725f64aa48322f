"""Batch jobs without an engine: what `ptdesk run` accepts (sweeps, time limits, data mounts) and
what a code snapshot holds (git's files, .ptdeskignore, the size limit naming the biggest)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from ptdesk.core.jobs import request, snapshot
from ptdesk.errors import InvalidInput


def test_a_sweep_makes_one_command_per_combination_in_order() -> None:
    combos = request.sweep_combinations(("python", "t.py", "--lr", "{lr}", "--bs={bs}"), ("lr=1e-3,3e-4", "bs=32,64"))
    assert [values for values, _ in combos] == [{"lr": "1e-3", "bs": "32"}, {"lr": "1e-3", "bs": "64"},
                                                {"lr": "3e-4", "bs": "32"}, {"lr": "3e-4", "bs": "64"}]
    assert combos[3][1] == ("python", "t.py", "--lr", "3e-4", "--bs=64")
    # Without --sweep, braces are the command's own business (find -exec {} \;).
    assert request.sweep_combinations(("find", ".", "-exec", "echo", "{}", ";"), ()) == [
        ({}, ("find", ".", "-exec", "echo", "{}", ";"))]


@pytest.mark.parametrize(("sweeps", "said"), [
    (("lr=1",), "The placeholder {bs} in the command has no values."),
    (("lr=1", "bs="), "--sweep 'bs=' is not NAME=VALUE,VALUE."),
    (("lr=1", "bs=2", "x=3"), "--sweep x is not used in the command."),
    (("lr",), "--sweep 'lr' is not NAME=VALUE,VALUE."),
    (("lr=1,2", "bs=3", "lr=4"), "--sweep lr is given twice."),  # the second silently won
])
def test_a_sweep_that_cannot_work_is_one_sentence(sweeps: tuple[str, ...], said: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        request.sweep_combinations(("t", "{lr}", "{bs}"), sweeps)
    assert raised.value.message == said


def test_a_snapshot_limit_is_a_size_or_one_sentence() -> None:
    assert request.snapshot_limit("200M") == 200 * 1024**2 and request.snapshot_limit("1.5g") == 1536 * 1024**2
    assert request.snapshot_limit("4096") == 4096 and request.snapshot_limit("10MiB") == 10 * 1024**2
    with pytest.raises(InvalidInput) as raised:  # a traceback from Docker's parser before
        request.snapshot_limit("abc")
    assert raised.value.message == "--snapshot-limit 'abc' is not a size."


def test_time_limits_and_data_mounts_parse_as_typed() -> None:
    assert request.time_limit("90s") == 90 and request.time_limit("1.5h") == 5400 and request.time_limit(None) is None
    with pytest.raises(InvalidInput):
        request.time_limit("0s")
    assert request.data_mounts(("/d/a", "/d/b:rw", "/d/c:ro")) == [("/d/a", "ro"), ("/d/b", "rw"), ("/d/c", "ro")]
    with pytest.raises(InvalidInput):
        request.check_command(("", " "))


def test_a_snapshot_holds_what_git_carries_minus_ptdeskignore_owned_by_root(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "src").mkdir(parents=True)
    (code / "src" / "train.py").write_text("print()\n")
    (code / "run.sh").write_text("#!/bin/sh\n")
    (code / "run.sh").chmod(0o755)
    (code / "big.ckpt").write_bytes(b"x" * 100)
    (code / "out").mkdir()
    (code / "out" / "result").write_text("r")
    (code / ".gitignore").write_text("out/\n")
    (code / ".ptdeskignore").write_text("# checkpoints stay home\n*.ckpt\n")
    subprocess.run(["git", "init", "-q", str(code)], check=True)
    taken = snapshot.take(code, tmp_path / "code.tar", 10_000)
    with tarfile.open(tmp_path / "code.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["code", "code/.gitignore", "code/.ptdeskignore", "code/run.sh", "code/src",
                               "code/src/train.py"]
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert members["code/run.sh"].mode == 0o755 and members["code/src/train.py"].mode == 0o644
    assert (taken.files, taken.git_commit, taken.git_dirty) == (4, None, True)  # no commit yet, untracked files
    assert (tmp_path / "code.tar").stat().st_mode & 0o777 == 0o600


def test_a_snapshot_over_the_limit_names_the_biggest_and_writes_nothing(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "data").mkdir(parents=True)
    (code / "data" / "a.bin").write_bytes(b"x" * 3000)
    (code / "data" / "b.bin").write_bytes(b"x" * 3000)
    (code / "model.pt").write_bytes(b"x" * 2000)
    (code / "train.py").write_text("print()\n")
    with pytest.raises(InvalidInput) as raised:
        snapshot.take(code, tmp_path / "code.tar", 1000)
    # Counting stops at the first file past the limit (from / that walk took 43 s): data/ is never read.
    assert "over the limit of 1000 B (2 KiB counted before stopping); the biggest so far: model.pt (2 KiB)." \
        in raised.value.message
    assert ".ptdeskignore" in (raised.value.hint or "")
    assert not (tmp_path / "code.tar").exists()


def test_a_snapshot_of_the_home_folder_says_to_run_it_from_the_code(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(InvalidInput) as raised:
        snapshot.take(tmp_path, tmp_path.parent / f"{tmp_path.name}.tar", 1000)
    assert raised.value.hint == "That is not a code folder: run it from your code's folder or pass --code DIR."


def test_gnu_tar_and_tarfile_write_the_same_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot is written by GNU tar where there is one (fast), by Python's tarfile elsewhere:
    the same entries, root-owned, with the same modes, links kept as links, odd names intact."""
    code = tmp_path / "code"
    (code / "src" / "deep").mkdir(parents=True)
    (code / "src" / "deep" / "m.py").write_text("x\n")
    (code / "odd name\nwith newline.py").write_text("y\n")
    (code / "-dash.py").write_text("z\n")
    (code / "run.sh").write_text("#!/bin/sh\n")
    (code / "run.sh").chmod(0o4755)  # setuid is not carried into a job
    (code / "link").symlink_to("src/deep/m.py")

    def written(gnu: bool) -> dict[str, tuple]:
        monkeypatch.setattr(snapshot, "_gnu_tar", lambda: gnu)
        snapshot.take(code, tmp_path / f"{gnu}.tar", 10_000)
        with tarfile.open(tmp_path / f"{gnu}.tar") as tar:
            return {m.name: (m.type, m.mode, m.uid, m.gid, m.linkname, tar.extractfile(m).read() if m.isfile() else b"")
                    for m in tar.getmembers()}

    assert snapshot._gnu_tar.__wrapped__()  # this machine has GNU tar: the fast path is the one tested
    gnu, plain = written(True), written(False)
    assert gnu == plain
    assert gnu["code/run.sh"][1] == 0o755 and gnu["code/link"][4] == "src/deep/m.py"
    assert set(gnu) == {"code", "code/src", "code/src/deep", "code/src/deep/m.py", "code/odd name\nwith newline.py",
                        "code/-dash.py", "code/run.sh", "code/link"}
