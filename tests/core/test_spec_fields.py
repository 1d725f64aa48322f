"""make_spec's errors say which input was wrong (a form puts the cursor there), one check each."""

from __future__ import annotations

import pytest

from ptdesk.errors import InvalidInput


@pytest.mark.parametrize(("typed", "field", "words"), [
    ({"cpus": 0.0}, "cpus", "CPUs must be at least 0.01 (got 0)"),
    ({"cpus": float("nan")}, "cpus", "CPUs must be at least 0.01"),
    ({"pids": 0}, "pids", "process limit (pids) must be positive"),
    ({"memory": "lots"}, "memory", "'lots' is not a size"),
    ({"shm_size": "lots"}, "shm_size", "'lots' is not a size"),
    ({"gpus": "0,0"}, "gpus", "listed twice"),
    ({"name": "Bad!"}, "name", "not a valid experiment name"),
    ({"owner": "Bad Owner"}, "owner", "not a valid owner name"),
])
def test_each_error_names_its_input(ws, typed, field, words):
    with pytest.raises(InvalidInput) as info:
        ws.make_spec("ssh", **{"name": "fine", **typed})
    assert info.value.field == field and words in info.value.message
    assert "pids" not in info.value.message or field == "pids"  # a CPU error says nothing of pids


def test_too_many_cpus_in_neutral_words(ws):
    import os

    with pytest.raises(InvalidInput) as info:
        ws.make_spec("ssh", name="fine", cpus=float((os.cpu_count() or 1) + 1))
    assert info.value.field == "cpus" and "--" not in str(info.value)
