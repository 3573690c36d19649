"""The package cache's pure parts: where it is, when it is off or unusable, its hooks, verify and publish."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from envctl.images import package_cache as pc


def test_the_cache_is_under_xdg_cache_home_then_home(tmp_path: Path) -> None:
    assert pc.cache_root({"XDG_CACHE_HOME": "/x/cache", "HOME": "/h"}) == Path("/x/cache/envctl/apt")
    assert pc.cache_root({"HOME": "/h"}) == Path("/h/.cache/envctl/apt")
    assert pc.cache_root({pc.ENV: "/elsewhere", "XDG_CACHE_HOME": "/x"}) == Path("/elsewhere")


def test_a_file_s_digest_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 << 20)  # more than one read's worth
    (tmp_path / "a.deb").write_bytes(data)
    assert pc.sha256(tmp_path / "a.deb") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("word", ["off", "OFF", "0", "no", "false", "none", " off "])
def test_the_cache_can_be_turned_off(word: str) -> None:
    assert pc.cache_root({pc.ENV: word, "HOME": "/h"}) is None
    assert pc.open_cache(lambda message: pytest.fail(message), {pc.ENV: word}) is None


def test_a_usable_cache_is_made_private(tmp_path: Path) -> None:
    cache = pc.open_cache(lambda message: pytest.fail(message), {pc.ENV: str(tmp_path / "c")})
    assert cache is not None and cache.debs.is_dir() and cache.runs.is_dir()
    assert cache.size() == (0, 0)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_cache_others_may_write_is_not_used_and_warns_once(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    warnings: list[str] = []
    for _ in range(3):
        assert pc.open_cache(warnings.append, {pc.ENV: str(root)}) is None
    assert len(warnings) == 1 and "others may write to it" in warnings[0] and str(root) in warnings[0]


def test_a_cache_that_cannot_be_made_is_not_used(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    warnings: list[str] = []
    assert pc.open_cache(warnings.append, {pc.ENV: str(blocker / "apt")}) is None
    assert len(warnings) == 1 and "cannot be written" in warnings[0] and f"{pc.ENV}=off" in warnings[0]


def test_the_hooks_copy_in_before_apt_and_out_after_without_failing(tmp_path: Path) -> None:
    hooks = pc.mmdebstrap_hooks("/c/runs/x/in", "/c/runs/x/out")
    assert hooks[0] == "--skip=essential/unlink"
    setup = [h for h in hooks if h.startswith("--setup-hook=")]
    customize = [h for h in hooks if h.startswith("--customize-hook=")]
    assert len(setup) == 1 and "/c/runs/x/in/*.deb" in setup[0] and setup[0].endswith("; true")
    assert len(customize) == 1 and "/c/runs/x/out/" in customize[0] and pc.GIVE_BACK_FAILED in customize[0]


def _run_hook(hook: str, chroot: Path) -> subprocess.CompletedProcess[str]:
    script = hook.split("=", 1)[1]
    return subprocess.run(["sh", "-c", script, "exec", str(chroot)], capture_output=True, text=True, check=True)


def test_the_hooks_move_debs_and_survive_a_failed_copy(tmp_path: Path) -> None:
    inbox, outbox, chroot = tmp_path / "in", tmp_path / "out", tmp_path / "chroot"
    inbox.mkdir()
    outbox.mkdir()
    (inbox / "a_1_all.deb").write_bytes(b"a")
    setup, customize = pc.mmdebstrap_hooks(str(inbox), str(outbox))[1:]
    _run_hook(setup, chroot)
    archives = chroot / pc.ARCHIVES.lstrip("/")
    assert (archives / "a_1_all.deb").read_bytes() == b"a"
    (archives / "b_1_all.deb").write_bytes(b"b")
    _run_hook(customize, chroot)
    assert sorted(p.name for p in outbox.iterdir()) == ["a_1_all.deb", "b_1_all.deb"]
    gone = tmp_path / "gone"
    failed = _run_hook(pc.mmdebstrap_hooks(str(inbox), str(gone))[2], chroot)  # the outbox vanished: no failure
    assert pc.GIVE_BACK_FAILED in failed.stdout


def _cache(tmp_path: Path) -> pc.PackageCache:
    cache = pc.open_cache(lambda message: pytest.fail(message), {pc.ENV: str(tmp_path / "cache")})
    assert cache is not None
    return cache


def _bootstrap_downloads(session: pc.Session, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (session.outbox / name).write_bytes(content)


def test_what_a_bootstrap_downloaded_is_published_and_handed_to_the_next(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pc.session_for(cache, pytest.fail) as first:
        assert first is not None and first.reused == []
        _bootstrap_downloads(first, {"a_1_all.deb": b"aaa", "b_1_all.deb": b"bb"})
    assert first.published == ["a_1_all.deb", "b_1_all.deb"]
    assert cache.size() == (2, 5)
    assert not first.work.exists()  # each bootstrap's directory goes
    with pc.session_for(cache, pytest.fail) as second:
        assert second is not None and second.reused == ["a_1_all.deb", "b_1_all.deb"]
        assert (second.inbox / "a_1_all.deb").read_bytes() == b"aaa"
        _bootstrap_downloads(second, {"a_1_all.deb": b"aaa", "c_1_all.deb": b"c"})
    assert second.published == ["c_1_all.deb"]


def test_a_corrupt_or_truncated_entry_is_dropped_so_apt_downloads_it_again(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pc.session_for(cache, pytest.fail) as first:
        _bootstrap_downloads(first, {"a_1_all.deb": b"aaaa", "b_1_all.deb": b"bbbb", "c_1_all.deb": b"cccc"})
    (cache.debs / "a_1_all.deb").write_bytes(b"axaa")  # same size: apt itself would take it
    (cache.debs / "b_1_all.deb").write_bytes(b"bb")
    (cache.debs / "c_1_all.deb.sha256").unlink()  # half published
    with pc.session_for(cache, pytest.fail) as second:
        assert second.reused == []
        assert sorted(p.name for p in second.inbox.iterdir()) == []
    assert cache.size() == (0, 0) and list(cache.debs.iterdir()) == []


def test_a_failed_copy_out_publishes_nothing(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pc.session_for(cache, pytest.fail) as session:
        _bootstrap_downloads(session, {"a_1_all.deb": b"a"})
        session.outbox_whole = False
    assert cache.size() == (0, 0)


def test_a_failed_bootstrap_publishes_nothing(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pytest.raises(RuntimeError), pc.session_for(cache, pytest.fail) as session:
        _bootstrap_downloads(session, {"a_1_all.deb": b"a"})
        raise RuntimeError("mmdebstrap failed")
    assert cache.size() == (0, 0) and not session.work.exists()


def test_a_cache_that_breaks_midway_warns_and_the_bootstrap_goes_on(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    warnings: list[str] = []
    with pc.session_for(cache, warnings.append) as session:
        _bootstrap_downloads(session, {"a_1_all.deb": b"a"})
        cache.debs.rmdir()
        cache.debs.write_text("not a directory any more")
    assert len(warnings) == 1 and "adding packages to it failed" in warnings[0]


def test_no_cache_no_session() -> None:
    with pc.session_for(None, pytest.fail) as session:
        assert session is None


def test_prune_empties_the_cache(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pc.session_for(cache, pytest.fail) as session:
        _bootstrap_downloads(session, {"a_1_all.deb": b"aaa"})
    assert pc.prune(cache) == (1, 3)
    assert cache.size() == (0, 0) and cache.debs.is_dir()


def test_two_bootstraps_at_once_each_add_only_what_the_other_did_not(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pc.session_for(cache, pytest.fail) as first, pc.session_for(cache, pytest.fail) as second:
        _bootstrap_downloads(first, {"a_1_all.deb": b"a", "b_1_all.deb": b"b"})
        _bootstrap_downloads(second, {"a_1_all.deb": b"a", "c_1_all.deb": b"c"})
    # `second` leaves its block first: it adds a and c; `first` then adds only b
    assert second.published == ["a_1_all.deb", "c_1_all.deb"] and first.published == ["b_1_all.deb"]
    assert cache.size() == (3, 3) and len(list(cache.runs.iterdir())) == 0


def test_a_killed_bootstraps_work_directory_goes_a_day_later(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    old, recent = cache.runs / "bootstrap-old", cache.runs / "bootstrap-recent"
    for work in (old, recent):
        (work / "in").mkdir(parents=True)
    os.utime(old, (0, 0))
    with pc.session_for(cache, pytest.fail):
        pass
    assert not old.exists() and recent.exists()
