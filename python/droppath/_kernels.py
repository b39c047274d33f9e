"""The tensor-level calls: torch tensors in, libdroppath through ctypes, torch tensors out.

These run without autograd (the autograd.Function in functional.py wraps
them) and expect checked arguments: CPU, strided, supported dtypes, batch
first.  Each returns new tensors (large ones from _pool.py); the inputs are
never written.
"""

import ctypes

import torch

from . import _layout
from . import _lib
from . import _pool

# (x dtype, f dtype) pairs dp_forward and dp_backward have kernels for.
RESIDUAL_COMBOS = frozenset([
    (torch.float32, torch.float32), (torch.bfloat16, torch.bfloat16),
    (torch.float16, torch.float16), (torch.float32, torch.bfloat16),
    (torch.float32, torch.float16)])


def _scales_ptr(scales):
    return ctypes.c_void_p(scales.data_ptr())


def residual_forward(x, f, params):
    """out = x + m*s*f (dp_forward); returns (out, scales) with B float32 scales."""
    out = _pool.empty_like(x)
    if x.numel() == 0:
        return out, _mask_scales(params, x.shape[0])
    scales = torch.empty(x.shape[0], dtype=torch.float32)
    r, (out, x, f) = _layout.rows([out, x, f])
    _lib.check("dp_forward", _lib.lib().dp_forward(
        ctypes.byref(params), r.shape(), r.view(0, out), r.view(1, x), r.view(2, f),
        _scales_ptr(scales)))
    return out, scales


def drop_path_forward(x, params):
    """out = m*s*x (dp_drop_path); returns (out, scales)."""
    out = _pool.empty_like(x)
    if x.numel() == 0:
        return out, _mask_scales(params, x.shape[0])
    scales = torch.empty(x.shape[0], dtype=torch.float32)
    r, (out, x) = _layout.rows([out, x])
    _lib.check("dp_drop_path", _lib.lib().dp_drop_path(
        ctypes.byref(params), r.shape(), r.view(0, out), r.view(1, x), _scales_ptr(scales)))
    return out, scales


def branch_backward(grad_out, scales, branch_dtype, num_threads):
    """grad_f = m*s*grad_out (dp_backward with the saved scales), in branch_dtype."""
    grad_f = _pool.empty_like(grad_out, branch_dtype)
    if grad_out.numel() == 0:
        return grad_f
    r, (grad_f, grad_out) = _layout.rows([grad_f, grad_out])
    params = _lib.make_params(0.0, num_threads=num_threads)  # the mask comes from scales
    # grad_x is not written (NULL data): autograd passes grad_out on to x itself.
    no_grad_x = _lib.TensorView(None, _layout.DTYPES[grad_out.dtype], r.dim, r.dim)
    _lib.check("dp_backward", _lib.lib().dp_backward(
        ctypes.byref(params), r.shape(), r.view(0, grad_f), no_grad_x, r.view(1, grad_out),
        _scales_ptr(scales), 0))
    return grad_f


def residual_inference(x, f, params):
    """out = x + f, or x + keep*f without scale_by_keep (dp_inference_add)."""
    out = _pool.empty_like(x)
    if x.numel() == 0:
        return out
    r, (out, x, f) = _layout.rows([out, x, f])
    _lib.check("dp_inference_add", _lib.lib().dp_inference_add(
        ctypes.byref(params), r.shape(), r.view(0, out), r.view(1, x), r.view(2, f)))
    return out


def _mask_scales(params, batch):
    scales = torch.empty(batch, dtype=torch.float32)
    if batch:
        _lib.check("dp_mask", _lib.lib().dp_mask(
            ctypes.byref(params), batch, None, _scales_ptr(scales), None, None))
    return scales


def mask(params, batch):
    """(keep flags as bool, scales as float32) of one call (dp_mask)."""
    scales = _mask_scales(params, batch)
    return scales != 0, scales


def drop_rates(rule, rate, depth):
    """dp_drop_rates as a list of floats."""
    out = (ctypes.c_double * depth)()
    _lib.check("dp_drop_rates", _lib.lib().dp_drop_rates(rule, rate, depth, out))
    return list(out)


# ---------------------------------------------------------------- sample compaction
# kept_indices travel as a tensor of size_t-sized integers (int64 on the 64-bit
# systems the package runs on), k entries: its length is the kept count.

INDEX_DTYPE = {8: torch.int64, 4: torch.int32}[ctypes.sizeof(ctypes.c_size_t)]


def kept_count(params, batch):
    """k of one call (dp_mask): how many samples its mask keeps."""
    count = ctypes.c_size_t()
    if batch:
        _lib.check("dp_mask", _lib.lib().dp_mask(ctypes.byref(params), batch, None, None,
                                                 ctypes.byref(count), None))
    return count.value


def compact_gather(x, params):
    """(x_kept, kept_indices): the kept samples of x (dp_compact_gather) in a compact
    tensor laid out as x, and their indices."""
    batch = x.shape[0]
    k = kept_count(params, batch)
    idx = torch.empty(batch, dtype=INDEX_DTYPE)
    count = ctypes.c_size_t()
    r, (x,) = _layout.rows([x])
    x_kept = _layout.compact_like(x, k)
    if batch == 0:
        return x_kept, idx
    # With D = 0 (or k = 0) nothing is copied but the mask is drawn all the same.
    dst = _layout.compact_view(r, x, x_kept) if k and x.numel() else \
        _lib.TensorView(None, _layout.DTYPES[x.dtype], r.dim, r.dim)
    src = r.view(0, x) if x.numel() else _lib.TensorView(None, _layout.DTYPES[x.dtype], 0, 0)
    _lib.check("dp_compact_gather", _lib.compact_function("dp_compact_gather")(
        ctypes.byref(params), r.shape(), dst, src, ctypes.byref(count),
        ctypes.c_void_p(idx.data_ptr())))
    assert count.value == k, "dp_mask and dp_compact_gather drew different masks"
    return x_kept, idx[:k]


def compact_forward(x, f_kept, idx, params):
    """out = x, out[idx[i]] = x[idx[i]] + s*f_kept[i] (dp_compact_forward)."""
    out = _pool.empty_like(x)
    if x.numel() == 0:
        return out
    r, (out, x) = _layout.rows([out, x])
    f_view, f_kept = _layout.compact_rows(r, out, f_kept)
    _lib.check("dp_compact_forward", _lib.compact_function("dp_compact_forward")(
        ctypes.byref(params), r.shape(), r.view(0, out), r.view(1, x), f_view, idx.numel(),
        ctypes.c_void_p(idx.data_ptr())))
    return out


def compact_backward(grad_out, idx, branch_dtype, params):
    """grad_f_kept[i] = s*grad_out[idx[i]] (dp_compact_backward), in branch_dtype.
    x's gradient is not written: autograd passes grad_out on (compact.py)."""
    if grad_out.numel() == 0:
        return _layout.compact_like(grad_out, idx.numel(), branch_dtype)
    r, (grad_out,) = _layout.rows([grad_out])
    grad_f_kept = _layout.compact_like(grad_out, idx.numel(), branch_dtype)
    no_grad_x = _lib.TensorView(None, _layout.DTYPES[grad_out.dtype], r.dim, r.dim)
    _lib.check("dp_compact_backward", _lib.compact_function("dp_compact_backward")(
        ctypes.byref(params), r.shape(), _layout.compact_view(r, grad_out, grad_f_kept),
        no_grad_x, r.view(0, grad_out), idx.numel(), ctypes.c_void_p(idx.data_ptr()), 0))
    return grad_f_kept


def compact_scatter_add(grad_x, grad_in_kept, idx, num_threads):
    """A copy of grad_x with grad_in_kept[i] added to sample idx[i]
    (dp_compact_scatter_add on the copy; grad_x itself is not written)."""
    out = _pool.empty_like(grad_x)
    out.copy_(grad_x)
    if out.numel() == 0 or idx.numel() == 0:
        return out
    r, (out,) = _layout.rows([out])
    in_view, grad_in_kept = _layout.compact_rows(r, out, grad_in_kept)
    params = _lib.make_params(0.0, num_threads=num_threads)  # threads only: no mask is drawn
    _lib.check("dp_compact_scatter_add", _lib.compact_function("dp_compact_scatter_add")(
        ctypes.byref(params), r.shape(), r.view(0, out), in_view, idx.numel(),
        ctypes.c_void_p(idx.data_ptr())))
    return out
