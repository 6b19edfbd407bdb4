"""A drained start evicts the data from the page cache, as an instance has none of it after a failover."""

import ctypes
import mmap
import os
from pathlib import Path

import pytest

from harness.services.postgres import evict_from_page_cache


def resident_pages(path) -> int:
    """Pages of the file in the page cache, from mincore(2) over a private mapping of it."""
    size = os.path.getsize(path)
    libc = ctypes.CDLL(None, use_errno=True)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            anchor = ctypes.c_char.from_buffer(mapped)
            failed = libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec)
            del anchor
        finally:
            mapped.close()
    if failed:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return sum(v & 1 for v in vec)


def filesystem_type(path) -> str:
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fs, *_ = line.split()
        if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fs
    return kind


def test_evicting_a_data_directory_drops_its_clean_pages_from_the_page_cache(tmp_path):
    if filesystem_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("tmpfs pages live only in the page cache: nothing to evict")
    data = tmp_path / "base" / "16384"
    data.mkdir(parents=True)
    path = data / "1259"
    with open(path, "wb") as handle:
        handle.write(os.urandom(4 * 1024 * 1024))
        handle.flush()
        os.fsync(handle.fileno())  # clean pages: only those can be dropped
    path.read_bytes()
    before = resident_pages(path)
    assert before > 0, "the file was just read: its pages should be cached"
    assert evict_from_page_cache(tmp_path) == 4 * 1024 * 1024
    assert resident_pages(path) < before / 4
