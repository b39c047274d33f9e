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


# ---------------------------------------------------------------- LayerScale join
# Tensors [B, ..., D] with gamma over the last dimension D (channel_rows).

def _f32_ptr(t):
    """(pointer, keep-alive) of t as contiguous float32, or (None, None) for None."""
    if t is None:
        return None, None
    t = t.detach().to(torch.float32).contiguous()
    return ctypes.c_void_p(t.data_ptr()), t


def fixed_scales(params, batch):
    """The scales an inference call applies to every sample: 1, or keep = 1 - p
    without scale_by_keep (computed as the library does, in double then f32)."""
    s = 1.0 if params.scale_by_keep else float(torch.tensor(1.0 - params.drop_prob,
                                                            dtype=torch.float32))
    return torch.full((batch,), s, dtype=torch.float32)


def ls_forward(x, f, gamma, params, inference, out=None):
    """out = x + ((gamma_d*f)*s): dp_forward_ls (training: returns the drawn scales)
    or dp_inference_add_ls (inference: returns the fixed ones).  out: a tensor
    to write (x itself for the in-place form), else a new one."""
    batch = x.shape[0]
    scales = fixed_scales(params, batch) if inference else torch.empty(batch, dtype=torch.float32)
    if x.numel() == 0:
        if not inference:
            scales = _mask_scales(params, batch)
        return (_pool.empty_like(x) if out is None else out), scales
    shape, (x3, f3) = _layout.channel_rows([x, f])
    target = out
    if out is None:
        out3 = _pool.empty_like(x3)
    else:
        (out3,) = _layout.channel_rows([out])[1]
        if out3.data_ptr() == out.data_ptr():  # a view of out: written in place
            target = None
        else:  # a copy: the result goes back into out afterwards
            out3 = torch.empty_like(x3)
    g_ptr, g_keep = _f32_ptr(gamma)
    args = (ctypes.byref(params), shape, _layout.channel_view(out3), _layout.channel_view(x3),
            _layout.channel_view(f3), g_ptr)
    if inference:
        _lib.check("dp_inference_add_ls", _lib.lib().dp_inference_add_ls(*args))
    else:
        _lib.check("dp_forward_ls", _lib.lib().dp_forward_ls(*args, _scales_ptr(scales)))
    del g_keep
    if target is not None:
        return target.copy_(out3.view(x.shape)), scales
    return (out3.view(x.shape) if out is None else out), scales


def ls_backward(grad_out, f, gamma, scales, branch_dtype, num_threads):
    """dp_backward_ls with the saved scales: (grad_f in branch_dtype, grad_gamma as
    float32, or None when f, the forward's branch input, is None).  grad_x is
    grad_out itself (autograd passes it on)."""
    dim = grad_out.shape[-1]
    grad_gamma = None if f is None else torch.zeros(dim, dtype=torch.float32)
    if grad_out.numel() == 0:
        return torch.empty_like(grad_out, dtype=branch_dtype), grad_gamma
    shape, t3 = _layout.channel_rows([grad_out] + ([] if f is None else [f]))
    go3 = t3[0]
    gf3 = _pool.empty_like(go3, branch_dtype)
    params = _lib.make_params(0.0, num_threads=num_threads)  # the mask comes from scales
    g_ptr, g_keep = _f32_ptr(gamma)
    f_view = _layout.null_view(branch_dtype, dim) if f is None else _layout.channel_view(t3[1])
    _lib.check("dp_backward_ls", _lib.lib().dp_backward_ls(
        ctypes.byref(params), shape, _layout.channel_view(gf3),
        _layout.null_view(grad_out.dtype, dim), _layout.channel_view(go3), f_view, g_ptr,
        None if grad_gamma is None else ctypes.c_void_p(grad_gamma.data_ptr()),
        _scales_ptr(scales), 0))
    del g_keep
    return gf3.view(grad_out.shape), grad_gamma


# ---------------------------------------------------------------- LayerScale in sample compaction
# The call's tensors as [B][T][D] channel rows (channel_rows: D is the last
# dimension, gamma's), the compact ones as [k][T][D] of the same T and D: the
# shape the dense LayerScale join describes, so grad_gamma is summed in the
# same row groups, dp_backward_ls's bits.

def compact_ls_forward(x, f_kept, gamma, idx, params):
    """out = x, out[idx[i]] = x[idx[i]] + ((gamma*f_kept[i])*s) (dp_compact_forward_ls)."""
    forward_ls, _ = _lib.compact_ls_functions()
    if x.numel() == 0:
        return _pool.empty_like(x)
    shape, (x3,) = _layout.channel_rows([x])
    f3 = _layout.compact_channel_rows(shape, f_kept)
    out3 = _pool.empty_like(x3)
    g_ptr, g_keep = _f32_ptr(gamma)
    _lib.check("dp_compact_forward_ls", forward_ls(
        ctypes.byref(params), shape, _layout.channel_view(out3), _layout.channel_view(x3),
        _layout.channel_view(f3), g_ptr, idx.numel(), ctypes.c_void_p(idx.data_ptr())))
    del g_keep
    return out3.view(x.shape)


def compact_ls_backward(grad_out, f_kept, gamma, idx, branch_dtype, params):
    """dp_compact_backward_ls: (grad_f_kept in branch_dtype, grad_gamma as float32,
    or None when f_kept, the forward's compact branch input, is None).  x's
    gradient is not written: autograd passes grad_out on (compact.py)."""
    _, backward_ls = _lib.compact_ls_functions()
    kept, dim = idx.numel(), grad_out.shape[-1]
    grad_gamma = None if f_kept is None else torch.zeros(dim, dtype=torch.float32)
    kept_shape = (kept,) + tuple(grad_out.shape[1:])
    if grad_out.numel() == 0:
        return torch.empty(kept_shape, dtype=branch_dtype), grad_gamma
    shape, (go3,) = _layout.channel_rows([grad_out])
    gf3 = _layout.compact_like(go3, kept, branch_dtype)  # [k][T][D] in grad_out's row order
    f3 = None if f_kept is None else _layout.compact_channel_rows(shape, f_kept)
    f_view = _layout.null_view(branch_dtype, dim) if f3 is None else _layout.channel_view(f3)
    g_ptr, g_keep = _f32_ptr(gamma)
    _lib.check("dp_compact_backward_ls", backward_ls(
        ctypes.byref(params), shape, _layout.channel_view(gf3),
        _layout.null_view(grad_out.dtype, dim), _layout.channel_view(go3), f_view, g_ptr,
        None if grad_gamma is None else ctypes.c_void_p(grad_gamma.data_ptr()), kept,
        ctypes.c_void_p(idx.data_ptr()), 0))
    del g_keep
    return gf3.view(kept_shape), grad_gamma


# ---------------------------------------------------------------- residual join + norm
# r = x + m*s*f (with ls_gamma: x + m*s*(ls_gamma*f)), y = norm(r)*weight + bias
# over the last dimension D.

def _norm_desc(kind, eps, weight, bias, mean=None, rstd=None, ls_gamma=None):
    """(dp_norm, keep-alive tensors)."""
    nm = _lib.Norm()
    _lib.lib().dp_norm_init(ctypes.byref(nm))
    nm.kind = kind
    nm.eps = eps
    w_ptr, w_keep = _f32_ptr(weight)
    b_ptr, b_keep = _f32_ptr(bias)
    ls_ptr, ls_keep = _f32_ptr(ls_gamma)
    nm.gamma, nm.beta, nm.ls_gamma = w_ptr, b_ptr, ls_ptr
    nm.mean = None if mean is None else mean.data_ptr()
    nm.rstd = None if rstd is None else rstd.data_ptr()
    return nm, (w_keep, b_keep, ls_keep)


def norm_forward(x, f, weight, bias, kind, eps, params, inference, ls_gamma=None):
    """dp_forward_norm (training) or dp_inference_norm: returns r (x's dtype),
    y (f's dtype), the B*T row means and rstds (float32) and the scales.
    ls_gamma: LayerScale's D factors in the join, or None."""
    if ls_gamma is not None:
        _lib.norm_ls_function()  # a library that honours dp_norm.ls_gamma, or a clear error
    batch = x.shape[0]
    scales = fixed_scales(params, batch) if inference else torch.empty(batch, dtype=torch.float32)
    rows = x.numel() // x.shape[-1] if x.numel() else 0
    mean, rstd = torch.empty(rows, dtype=torch.float32), torch.empty(rows, dtype=torch.float32)
    if x.numel() == 0:
        if not inference:
            scales = _mask_scales(params, batch)
        return torch.empty_like(x), torch.empty_like(x, dtype=f.dtype), mean, rstd, scales
    shape, (x3, f3) = _layout.channel_rows([x, f])
    r3, y3 = _pool.empty_like(x3), _pool.empty_like(x3, f.dtype)
    nm, keep = _norm_desc(kind, eps, weight, bias, mean, rstd, ls_gamma)
    views = (_layout.channel_view(y3), _layout.channel_view(r3), _layout.channel_view(x3),
             _layout.channel_view(f3))
    if inference:
        _lib.check("dp_inference_norm", _lib.lib().dp_inference_norm(
            ctypes.byref(params), shape, ctypes.byref(nm), *views))
    else:
        _lib.check("dp_forward_norm", _lib.lib().dp_forward_norm(
            ctypes.byref(params), shape, ctypes.byref(nm), *views, _scales_ptr(scales)))
    del keep
    return r3.view(x.shape), y3.view(x.shape), mean, rstd, scales


def norm_backward(grad_y, grad_r, r, mean, rstd, scales, weight, kind, eps, want_grad_x,
                  want_grad_weight, want_grad_bias, num_threads, ls_gamma=None, f=None):
    """dp_backward_norm, or with ls_gamma dp_backward_norm_ls: (grad_x or None,
    grad_f, grad_weight or None, grad_bias or None, grad_ls_gamma or None), the
    parameter gradients float32.  grad_r (the gradient arriving on r) may be
    None: none.  f, the forward's branch input, is given (with ls_gamma) when
    grad_ls_gamma is wanted; it is read for nothing else."""
    dim = r.shape[-1]
    f = None if ls_gamma is None else f  # grad_ls_gamma needs both
    fn_name = "dp_backward_norm" if ls_gamma is None else "dp_backward_norm_ls"
    fn = _lib.lib().dp_backward_norm if ls_gamma is None else _lib.norm_ls_function()
    grad_w = torch.zeros(dim, dtype=torch.float32) if want_grad_weight else None
    grad_b = torch.zeros(dim, dtype=torch.float32) if want_grad_bias else None
    grad_ls = torch.zeros(dim, dtype=torch.float32) if f is not None else None
    if r.numel() == 0:
        grad_x = _pool.empty_like(r) if want_grad_x else None
        return grad_x, _pool.empty_like(r, grad_y.dtype), grad_w, grad_b, grad_ls
    # grad_r and f are optional: they go last so that t3's first two are always there.
    tensors = [grad_y, r] + [t for t in (grad_r, f) if t is not None]
    shape, t3 = _layout.channel_rows(tensors)
    gy3, r3 = t3[0], t3[1]
    gr3 = None if grad_r is None else t3[2]
    f3 = None if f is None else t3[-1]
    gf3 = _pool.empty_like(gy3)
    gx3 = _pool.empty_like(r3) if want_grad_x else None
    nm, keep = _norm_desc(kind, eps, weight, None, mean, rstd, ls_gamma)
    params = _lib.make_params(0.0, num_threads=num_threads)  # the mask comes from scales
    view_or_null = lambda t, dtype: (_layout.null_view(dtype, dim) if t is None  # noqa: E731
                                     else _layout.channel_view(t))
    ptr_or_null = lambda t: None if t is None else ctypes.c_void_p(t.data_ptr())  # noqa: E731
    args = [ctypes.byref(params), shape, ctypes.byref(nm), _layout.channel_view(gf3),
            view_or_null(gx3, r.dtype), _layout.channel_view(gy3), _layout.channel_view(r3),
            view_or_null(gr3, r.dtype)]
    if ls_gamma is not None:  # f after grad_r_in, grad_ls_gamma after grad_beta
        args.append(view_or_null(f3, grad_y.dtype))
    args += [_scales_ptr(scales), ptr_or_null(grad_w), ptr_or_null(grad_b)]
    if ls_gamma is not None:
        args.append(ptr_or_null(grad_ls))
    _lib.check(fn_name, fn(*args, 0))
    del keep
    grad_x = None if gx3 is None else gx3.view(r.shape)
    return grad_x, gf3.view(r.shape), grad_w, grad_b, grad_ls
