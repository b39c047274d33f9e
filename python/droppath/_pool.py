"""Memory for large outputs, kept and reused instead of faulted in afresh.

Why: torch's CPU allocator takes large tensors from glibc, which maps fresh
pages for every block above its mmap threshold (32 MiB at most) and unmaps
them on free.  Each new ViT-B-sized output (38 MiB) then costs ~9,500 page
faults and the kernel zeroing every page, which took longer than the fused
kernel itself (tools/bench-torch.sh).  A training step makes the same
shapes every time, so outputs of at least MIN_BYTES come from here instead:
anonymous mappings (huge pages where the kernel grants them on request),
handed to torch with torch.frombuffer and returned to a free list when the
last tensor using them dies.

DROPPATH_POOL_BYTES (default 1 GiB) bounds the bytes kept idle; 0 turns the
pool off.  empty_cache() releases the idle blocks.  Pooled memory is not
zeroed: every caller overwrites all of it.
"""

import ctypes
import mmap
import os
import threading

import torch

MIN_BYTES = 1 << 20


def _limit_from_env():
    text = os.environ.get("DROPPATH_POOL_BYTES", "")
    try:
        return max(int(text), 0) if text else 1 << 30
    except ValueError:
        raise ValueError("DROPPATH_POOL_BYTES must be a number of bytes, got %r" % text) from None


_lock = threading.Lock()
_free = {}  # bytes -> [mmap]
_state = {"idle": 0, "limit": None}
_block_types = {}


def _give_back(mm):
    n = len(mm)
    with _lock:
        if _state["idle"] + n <= _state["limit"]:
            _free.setdefault(n, []).append(mm)
            _state["idle"] += n
    # Otherwise mm is dropped: unmapped once the block exporting it is gone.


def _block_type(nbytes):
    """A ctypes byte array of nbytes whose end returns its mapping to the pool."""
    t = _block_types.get(nbytes)
    if t is None:
        class Block(ctypes.c_char * nbytes):
            def __del__(self):
                try:
                    _give_back(self.mapping)
                except Exception:  # interpreter shutdown: nothing left to give back to
                    pass
        t = _block_types.setdefault(nbytes, Block)
    return t


def _take(nbytes):
    with _lock:
        blocks = _free.get(nbytes)
        if blocks:
            _state["idle"] -= nbytes
            return blocks.pop()
    mm = mmap.mmap(-1, nbytes)
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mm.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass
    return mm


def _dense(t):
    """t's elements fill numel() consecutive slots in some order of its dimensions."""
    expect = 1
    for d in sorted((d for d in range(t.dim()) if t.shape[d] != 1), key=t.stride):
        if t.stride(d) != expect:
            return False
        expect *= t.shape[d]
    return True


def _pooled(numel, dtype):
    """A flat pooled tensor of numel elements, or None when it is too small or the pool is off."""
    if _state["limit"] is None:
        _state["limit"] = _limit_from_env()
    nbytes = numel * (torch.finfo(dtype).bits // 8)
    if nbytes < MIN_BYTES or _state["limit"] == 0:
        return None
    mm = _take(nbytes)
    block = _block_type(nbytes).from_buffer(mm)
    block.mapping = mm
    return torch.frombuffer(block, dtype=dtype)


def empty_like(t, dtype=None):
    """torch.empty_like(t, dtype=dtype) (t's layout when t is dense), pooled when large."""
    dtype = t.dtype if dtype is None else dtype
    flat = _pooled(t.numel(), dtype) if _dense(t) else None
    if flat is None:
        return torch.empty_like(t, dtype=dtype)
    return flat.as_strided(t.shape, t.stride())


def empty_strided(shape, stride, dtype):
    """torch.empty_strided for strides that fill numel() slots exactly, pooled when large."""
    numel = 1
    for s in shape:
        numel *= s
    flat = _pooled(numel, dtype)
    if flat is None:
        return torch.empty_strided(shape, stride, dtype=dtype)
    return flat.as_strided(shape, stride)


def empty_cache():
    """Release the idle blocks; returns the bytes released."""
    with _lock:
        released = _state["idle"]
        _free.clear()
        _state["idle"] = 0
    return released


def idle_bytes():
    return _state["idle"]
