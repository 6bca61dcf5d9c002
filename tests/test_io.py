"""alkd.io: atomic writes and the claims that make a shared work queue."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from alkd.io import atomic_write_text, claim, exclusive


def claim_all(args) -> list[str]:
    folder, names = args
    return [name for name in names if claim(folder, name)]


def test_each_name_is_claimed_by_exactly_one_of_racing_processes(tmp_path):
    names = [f"cell{i}" for i in range(200)]
    # four processes try every name at once; a check-then-create claim
    # would hand some names to two of them
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        won = pool.map(claim_all, [(tmp_path, names)] * 4)
    flat = [name for process in won for name in process]
    assert sorted(flat) == sorted(names)


def test_a_claim_holds_the_claimers_pid_and_a_second_claim_fails(tmp_path):
    assert claim(tmp_path, "k") is True
    assert claim(tmp_path, "k") is False
    assert (tmp_path / "k").read_text() == f"{os.getpid()}\n"


def test_claiming_in_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        claim(tmp_path / "nope", "k")


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_exclusive_makes_the_second_holder_wait_and_says_so(tmp_path):
    lock = tmp_path / "locks" / "thing.lock"
    events: list[str] = []

    def second() -> None:
        with exclusive(lock) as waited:
            events.append(f"second waited={waited}")

    with exclusive(lock) as waited:
        assert waited is False
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.3)  # the other holder is now blocked on the lock
        events.append("first done")
    other.join()
    assert events == ["first done", "second waited=True"]

    with exclusive(lock) as waited:  # released: free to take again
        assert waited is False
