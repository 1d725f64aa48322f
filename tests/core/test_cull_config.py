"""[cull] in config.toml: each kind's idle policy, and a bad value said in one sentence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.experiments.culling import CullPolicy, policy_for
from ptdesk.errors import ConfigError


def _config(tmp_path: Path, text: str):
    (tmp_path / "config.toml").write_text(text)
    return load_config({**os.environ, "PTDESK_HOME": str(tmp_path)})


def test_a_kinds_own_values_win_over_the_table_and_the_rest_are_defaults(tmp_path: Path) -> None:
    config = _config(tmp_path, '[cull]\nidle = "2h"\ngpu_below = 10\n[cull.jupyter]\nidle = "30m"\nwarn = "0s"\n')
    assert policy_for(config, "ssh") == CullPolicy(idle=7200, gpu_below=10, gpu_window=1800, warn=900, keep_max=28800)
    assert policy_for(config, "jupyter") == CullPolicy(idle=1800, gpu_below=10, gpu_window=1800, warn=0,
                                                       keep_max=28800)
    assert policy_for(_config(tmp_path, ""), "ssh") is None  # nothing set: nothing is culled


@pytest.mark.parametrize(("text", "said"), [
    ('[cull]\nidle = "soon"\n', "cull.idle in"),
    ('[cull]\ngpu_below = 150\n', "cull.gpu_below in"),
    ('[cull.jupyter]\nidel = "1h"\n', "Unknown setting 'cull.jupyter.idel'"),
    ('cull = 3\n', "'cull' in"),
])
def test_a_bad_cull_setting_is_one_sentence_naming_it(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, text)
    assert said in caught.value.message and caught.value.message.count(". ") <= 1


def test_a_kind_that_ends_by_itself_is_never_culled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind declaring cullable = False (a batch job, with its own time limit) gets no policy."""
    from ptdesk.core.kinds import REGISTRY

    config = _config(tmp_path, '[cull]\nidle = "1h"\n')
    assert policy_for(config, "ssh") is not None
    monkeypatch.setattr(type(REGISTRY["ssh"]), "cullable", False)
    assert policy_for(config, "ssh") is None and policy_for(config, "jupyter") is not None



def test_a_batch_job_gets_no_cull_policy_and_keep_says_it_needs_none(tmp_path: Path) -> None:
    """The job kind ends by itself: no policy even with [cull] set, and `ptdesk keep JOB` is refused
    in one sentence (it was accepted, and `cull --dry-run` then listed the job as kept)."""
    from types import SimpleNamespace

    from ptdesk.core.experiments.culling import keep
    from ptdesk.errors import PtdeskError

    config = _config(tmp_path, '[cull]\nidle = "1h"\n')
    assert policy_for(config, "job") is None and policy_for(config, "ssh") is not None
    store = SimpleNamespace(experiment=lambda name: SimpleNamespace(name=name, kind="job"))
    with pytest.raises(PtdeskError) as refused:
        keep(SimpleNamespace(config=config, store=store), "train-1")  # type: ignore[arg-type]
    assert refused.value.message == ("The idle cull never stops 'train-1' (a job: it ends by itself), "
                                     "so it needs no keeping.")
