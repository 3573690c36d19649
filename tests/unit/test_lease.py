import subprocess
import time

import pytest

from envctl.runtime import lease
from envctl.runtime.lease import Lease, Owner


def test_this_process_is_a_live_owner_and_its_label_round_trips():
    me = Owner.of()
    assert me.alive() is True
    assert Owner.parse(me.label()) == me


def test_a_finished_process_is_a_dead_owner():
    child = subprocess.Popen(["sleep", "30"])
    owner = Owner.of(child.pid)
    child.kill()
    child.wait()
    assert owner.alive() is False
    assert "is gone" in Lease(owner).abandoned()


def test_a_reused_pid_is_not_the_owner():
    me = Owner.of()
    if me.started is None:
        pytest.skip("process start times cannot be read here (no /proc): liveness is existence only")
    assert Owner(me.pid, me.started - 3600, me.host).alive() is False  # same pid, another process


def test_an_owner_on_another_host_is_unknown():
    me = Owner.of()
    assert Owner(me.pid, me.started, "elsewhere").alive() is None
    assert Lease(Owner(me.pid, me.started, "elsewhere")).abandoned() is None


def test_without_a_start_time_an_owner_is_alive_while_its_pid_exists():
    child = subprocess.Popen(["sleep", "30"])
    owner = Owner(child.pid, None, Owner.of().host)
    assert owner.alive() is True and Owner.parse(owner.label()) == owner
    child.kill()
    child.wait()
    assert owner.alive() is False


def test_labels_of_another_form_name_no_owner():
    assert Owner.parse("vm/boot-id/123/456") is None  # the /proc-based form of earlier versions
    assert Owner.parse("vm/123/nan") is None


def test_expiry_and_a_released_lease():
    assert "time to live ran out" in Lease(None, time.time() - 1).abandoned()
    assert Lease(None, time.time() + 60).abandoned() is None
    released = lease.released()
    assert not released.watched and released.abandoned() is None


def test_lease_file_round_trip(tmp_path):
    written = lease.held_by_me(ttl=60)
    lease.write(tmp_path, written)
    assert lease.read(tmp_path) == written
    lease.remove(tmp_path)
    assert lease.read(tmp_path) is None


def test_labels_carry_the_first_owner_and_the_directory(tmp_path):
    held = lease.held_by_me()
    labels = held.labels(tmp_path)
    assert labels["envctl.state"] == str(tmp_path)
    assert Lease.from_labels(labels) == held
    assert Lease.from_labels({"envctl.state": "/x"}) is None


def test_binding_to_a_missing_process_is_refused():
    with pytest.raises(ValueError, match="no such process"):
        lease.bound_to(2 ** 22 + 12345)


def test_a_run_kept_for_debugging_is_nobody_s_to_reap(tmp_path):
    lease.write(tmp_path, lease.held_by_me())
    lease.keep_for_debugging(tmp_path)
    kept = lease.read(tmp_path)
    assert kept is not None and not kept.watched and kept.abandoned() is None
