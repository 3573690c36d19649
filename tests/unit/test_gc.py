"""`gc` finds runs by whatever of them is left, and judges each by its lease.

The backend here is a stand-in holding one run's swarm secret and nothing else (an `up`
that died after making it): what is tested is finding and judging, not Docker
(tests/integration/swarm/test_swarm_faults.py leaves a real secret on the lab).
"""
from __future__ import annotations

import subprocess

import pytest

from envctl.backend import engine as eng
from envctl.runtime import gc, lease


def labels_match(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


class OnlyASecret:
    """A backend where a run left only a granted file."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.files = [{"Kind": "secret", "ID": "secret-id-0123", "Name": "envctl-0a1b", "Labels": labels}]
        self.removed: list[str] = []

    def containers(self, labels):
        return []

    def networks(self, labels=None):
        return []

    def volumes(self, labels):
        return []

    def granted_files(self, labels):
        return [f for f in self.files if labels_match(f["Labels"], labels)]

    def remove_granted_file(self, kind, file_id):
        self.removed.append(f"{kind} {file_id}")
        self.files = [f for f in self.files if f["ID"] != file_id]


@pytest.fixture
def dead_owner() -> lease.Owner:
    child = subprocess.Popen(["sleep", "30"])
    owner = lease.Owner.of(child.pid)
    child.kill()
    child.wait()
    return owner


@pytest.mark.parametrize("directory_kept", [True, False])
def test_a_run_of_which_only_a_swarm_secret_is_left_is_found_and_removed(tmp_path, dead_owner, directory_kept) -> None:
    run_dir = tmp_path / ".envctl" / "runs" / "r1"
    owned = lease.Lease(dead_owner)
    if directory_kept:
        run_dir.mkdir(parents=True)
        lease.write(run_dir, owned)  # the lease file decides
    backend = OnlyASecret({**eng.run_labels("shop", "r1"), **owned.labels(run_dir)})

    [found] = gc.find_runs(backend)  # type: ignore[arg-type]
    assert (found.project, found.run, found.files, found.containers) == ("shop", "r1", 1, 0)
    assert "is gone" in (found.verdict or "")

    removed, kept = gc.collect(backend)  # type: ignore[arg-type]
    assert [(r.run, "is gone" in why) for r, why in removed] == [("r1", True)] and kept == []
    assert backend.removed == ["secret secret-id-0123"] and gc.find_runs(backend) == []  # type: ignore[arg-type]
