"""The collector's pace during scans: raised while any scan runs, put back after the last."""

from __future__ import annotations

import gc

from scanner.scan_gc import SCAN_GEN0_THRESHOLD, scan_collection_pace


def test_the_first_threshold_is_raised_during_a_scan_and_restored_after() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        with scan_collection_pace():
            assert gc.get_threshold() == (SCAN_GEN0_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_overlapping_scans_restore_the_pace_only_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        first, second = scan_collection_pace(), scan_collection_pace()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert gc.get_threshold()[0] == SCAN_GEN0_THRESHOLD  # the second scan still runs
        second.__exit__(None, None, None)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_a_higher_threshold_set_by_the_user_is_kept() -> None:
    before = gc.get_threshold()
    gc.set_threshold(SCAN_GEN0_THRESHOLD * 5, 10, 10)
    try:
        with scan_collection_pace():
            assert gc.get_threshold()[0] == SCAN_GEN0_THRESHOLD * 5
    finally:
        gc.set_threshold(*before)
