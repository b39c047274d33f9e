"""Describing torch tensors as libdroppath's [B][T][D] row views.

The C API reads a tensor as B samples of T rows of D contiguous elements,
row (b, t) at b*sample_stride + t*seq_stride.  DropPath is elementwise within
a sample, so the non-batch dimensions may be visited in any order, as long as
every tensor of a call is visited in the same order: they are put in the
order of the first tensor's memory (largest stride first), so a
channels-last or a transposed tensor needs no copy.  Then the innermost
dimensions that are contiguous in every tensor become D and the rest must
collapse into one T dimension with a single stride.  A tensor that cannot be
described so (a slice with a step in its last dimension, an expanded
tensor's zero strides, ...) is copied into the first tensor's layout, and
the first tensor itself, if needed, into a contiguous one.

Sample compaction adds compact tensors: k of the B samples, with the rows of
the call's (T, D) in the same element order (compact_like makes one,
compact_view describes one).
"""

import torch

from . import _lib
from . import _pool

DTYPES = {torch.float32: _lib.DP_F32, torch.bfloat16: _lib.DP_BF16, torch.float16: _lib.DP_F16}


class Rows:
    """The shared (B, T, D) of a call and each tensor's (sample_stride, seq_stride)."""

    def __init__(self, batch, seq, dim, strides):
        self.batch, self.seq, self.dim = batch, seq, dim
        self.strides = strides

    def shape(self):
        return _lib.Shape(self.batch, self.seq, self.dim)

    def view(self, i, tensor):
        ss, ts = self.strides[i]
        return _lib.TensorView(tensor.data_ptr(), DTYPES[tensor.dtype], ss, ts)


def _dims_order(t):
    """Non-batch dimensions of size > 1, outermost in memory first."""
    dims = [d for d in range(1, t.dim()) if t.shape[d] > 1]
    return sorted(dims, key=lambda d: -t.stride(d))


def _split(t, dims, k):
    """(T, D, seq_stride) when dims[k:] are contiguous rows and dims[:k] one
    uniform stride; else None."""
    sizes = [t.shape[d] for d in dims]
    strides = [t.stride(d) for d in dims]
    m = len(dims)
    if m == 0:
        return 1, 1, 1
    if strides[-1] != 1:
        return None
    for i in range(k, m - 1):  # row dimensions: back to back
        if strides[i] != strides[i + 1] * sizes[i + 1]:
            return None
    for i in range(k - 1):  # outer dimensions: one stride
        if strides[i] != strides[i + 1] * sizes[i + 1]:
            return None
    dim = 1
    for s in sizes[k:]:
        dim *= s
    seq = 1
    for s in sizes[:k]:
        seq *= s
    seq_stride = strides[k - 1] if k > 0 else dim
    return seq, dim, seq_stride


def _strides_ok(batch, seq, dim, ss, ts):
    """The C library's own test (dp_check_tensor): rows of D fit their strides and are distinct."""
    if ss < dim or (seq > 1 and ts < dim):
        return False
    if batch > 1 and seq > 1:
        return ts >= (batch - 1) * ss + dim or ss >= (seq - 1) * ts + dim
    return True


def _describe(tensors, dims):
    """Rows for all tensors with the smallest T, or None."""
    batch = tensors[0].shape[0]
    for k in range(max(len(dims), 1)):
        splits = [_split(t, dims, k) for t in tensors]
        if any(s is None for s in splits):
            continue
        seq, dim, _ = splits[0]
        strides = []
        for t, (_, _, ts) in zip(tensors, splits):
            # A lone sample or row may carry any stride: give the library a valid one.
            ss = t.stride(0) if batch > 1 else (seq - 1) * ts + dim
            ts = ts if seq > 1 else dim
            if not _strides_ok(batch, seq, dim, ss, ts):
                break
            strides.append((ss, ts))
        else:
            return Rows(batch, seq, dim, strides)
    return None


def rows(tensors):
    """Describe tensors of one shape (tensors[0] leading); returns (Rows, tensors),
    the tensors possibly replaced by copies the library can read."""
    tensors = list(tensors)
    if all(t.is_contiguous() for t in tensors):  # the common case, one row per sample
        batch = tensors[0].shape[0]
        n = tensors[0].numel() // batch if batch else 0
        return Rows(batch, 1, n, [(n, n)] * len(tensors)), tensors
    r = _describe(tensors, _dims_order(tensors[0]))
    if r is not None:
        return r, tensors
    lead = tensors[0]
    if _describe([lead], _dims_order(lead)) is None:
        lead = tensors[0] = lead.contiguous()
    dims = _dims_order(lead)
    # Accept tensors one by one, copying the ones that do not fit the ones before
    # into lead's layout: such a copy fits wherever lead does.
    for i in range(1, len(tensors)):
        if _describe(tensors[:i + 1], dims) is None:
            tensors[i] = _like(lead, tensors[i])
    return _describe(tensors, dims), tensors


def _like(lead, t):
    """t's values in lead's memory layout (and t's dtype)."""
    out = torch.empty_like(lead, dtype=t.dtype)
    if out.stride() != lead.stride():  # empty_like keeps strides of dense tensors only
        out = torch.empty_strided(lead.shape, lead.stride(), dtype=t.dtype)
    return out.copy_(t)


# ---------------------------------------------------------------- compact tensors

def compact_like(lead, batch, dtype=None):
    """An empty tensor of `batch` samples shaped like lead's samples, its dimensions
    in lead's memory order (batch included: a sequence-first lead gives a
    sequence-first compact tensor), so lead's rows describe it too."""
    dtype = lead.dtype if dtype is None else dtype
    order = sorted(range(lead.dim()), key=lambda d: -lead.stride(d))  # outermost first
    shape = list(lead.shape)
    shape[0] = batch
    stride = [0] * lead.dim()
    step = 1
    for d in reversed(order):
        stride[d] = step
        step *= shape[d]
    return _pool.empty_strided(shape, stride, dtype)


def compact_view(r, lead, c):
    """The TensorView of compact tensor c (c.shape[0] samples) under lead's Rows r,
    or None when c's rows are not laid out as the call's (T, D) rows."""
    if tuple(c.shape[1:]) != tuple(lead.shape[1:]):
        return None
    kept = c.shape[0]
    dims = _dims_order(lead)
    for k in range(max(len(dims), 1)):
        split = _split(c, dims, k)
        if split is None or split[:2] != (r.seq, r.dim):
            continue
        ts = split[2] if r.seq > 1 else r.dim
        ss = c.stride(0) if kept > 1 else (r.seq - 1) * ts + r.dim
        if _strides_ok(kept, r.seq, r.dim, ss, ts):
            return _lib.TensorView(c.data_ptr(), DTYPES[c.dtype], ss, ts)
    return None


def compact_rows(r, lead, c):
    """(TensorView, tensor) for compact tensor c: c itself when compact_view
    describes it, else a copy in compact_like's layout."""
    view = compact_view(r, lead, c)
    if view is None:
        c = compact_like(lead, c.shape[0], c.dtype).copy_(c)
        view = compact_view(r, lead, c)
    return view, c


# ---------------------------------------------------------------- rows of channels

def channel_rows(tensors):
    """Tensors of one shape [B, ..., D] as B samples of T rows whose D elements are
    the last dimension: LayerScale's channels and the norm's normalised dimension,
    so, unlike rows(), D never merges other dimensions.  Returns (Shape, tensors
    as [B][T][D] views, or contiguous copies where no view can be described)."""
    lead = tensors[0]
    batch, dim = lead.shape[0], lead.shape[-1]
    seq = lead.numel() // (batch * dim) if batch * dim else 0
    out = []
    for t in tensors:
        t3 = t.reshape(batch, seq, dim)  # a view where the middle dimensions merge
        if not _channel_strides_ok(t3):
            t3 = t3.contiguous()
        out.append(t3)
    return _lib.Shape(batch, seq, dim), out


def compact_channel_rows(shape, c):
    """A compact tensor c (c.shape[0] of the call's samples, each of the Shape's T
    rows of D channels) as [k][T][D], as channel_rows describes the call's full
    tensors: a view, or a contiguous copy where no view can be described."""
    c3 = c.reshape(c.shape[0], shape.seq, shape.dim)
    return c3 if _channel_strides_ok(c3) else c3.contiguous()


def _channel_strides(t3):
    batch, seq, dim = t3.shape
    ss, ts, _ = t3.stride()
    ts = ts if seq > 1 else dim  # a lone sample or row may carry any stride
    ss = ss if batch > 1 else (seq - 1) * ts + dim
    return ss, ts


def _channel_strides_ok(t3):
    batch, seq, dim = t3.shape
    if dim > 1 and t3.stride(2) != 1:
        return False
    return _strides_ok(batch, seq, dim, *_channel_strides(t3))


def channel_view(t3):
    """The dp_tensor of a [B][T][D] tensor channel_rows accepted (or made)."""
    ss, ts = _channel_strides(t3)
    return _lib.TensorView(t3.data_ptr(), DTYPES[t3.dtype], ss, ts)


def null_view(dtype, dim):
    """A dp_tensor with NULL data: an optional tensor left out."""
    return _lib.TensorView(None, DTYPES[dtype], dim, dim)
