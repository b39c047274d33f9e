"""The kernels as torch operators: torch.ops.droppath.{forward,drop_path,backward,inference_add,
compact_gather,compact_forward,compact_backward,compact_scatter_add}, {forward,inference_add,backward}_ls
(LayerScale), compact_{forward,backward}_ls (LayerScale in the compacted join),
{forward,inference,backward}_norm and backward_norm_ls (the norm's join with LayerScale:
forward_norm and inference_norm take it as their optional ls_gamma, dp_norm.ls_gamma in C).

Registered through torch.library (torch >= 1.12: ``Library(ns, "DEF")``,
``define``, ``impl`` for the CPU key) so they show up to the dispatcher,
profilers and ``torch.ops`` like any operator; the autograd.Functions in
functional.py call them.  Where torch has no torch.library, or the namespace
is taken (the package loaded twice from two places), the same Python
functions are called directly: ``REGISTERED`` says which.

Schema ints are int64, so the uint64 seed, offset and sample_base travel as
their two's-complement int64 value.
"""

import torch

from . import _kernels
from . import _lib

NAMESPACE = "droppath"
_SCHEMAS = {
    "forward": "forward(Tensor x, Tensor f, float drop_prob, int seed, int offset, "
               "int sample_base, int mode, bool scale_by_keep, int num_threads) -> (Tensor, Tensor)",
    "drop_path": "drop_path(Tensor x, float drop_prob, int seed, int offset, int sample_base, "
                 "int mode, bool scale_by_keep, int num_threads) -> (Tensor, Tensor)",
    "backward": "backward(Tensor grad_out, Tensor scales, ScalarType branch_dtype, "
                "int num_threads) -> Tensor",
    "inference_add": "inference_add(Tensor x, Tensor f, float drop_prob, bool scale_by_keep, "
                     "int num_threads) -> Tensor",
    # Sample compaction: kept_indices is a tensor of the k kept sample indices.
    "compact_gather": "compact_gather(Tensor x, float drop_prob, int seed, int offset, "
                      "int sample_base, int mode, int num_threads) -> (Tensor, Tensor)",
    "compact_forward": "compact_forward(Tensor x, Tensor f_kept, Tensor kept_indices, "
                       "float drop_prob, int mode, bool scale_by_keep, int num_threads) -> Tensor",
    "compact_backward": "compact_backward(Tensor grad_out, Tensor kept_indices, float drop_prob, "
                        "int mode, bool scale_by_keep, ScalarType branch_dtype, "
                        "int num_threads) -> Tensor",
    "compact_scatter_add": "compact_scatter_add(Tensor grad_x, Tensor grad_in_kept, "
                           "Tensor kept_indices, int num_threads) -> Tensor",
    # LayerScale join (layerscale.py): out = x + drop_path(gamma * f)
    "forward_ls": "forward_ls(Tensor x, Tensor f, Tensor gamma, float drop_prob, int seed, "
                  "int offset, int sample_base, int mode, bool scale_by_keep, int num_threads) "
                  "-> (Tensor, Tensor)",
    "inference_add_ls": "inference_add_ls(Tensor x, Tensor f, Tensor gamma, float drop_prob, "
                        "bool scale_by_keep, int num_threads) -> (Tensor, Tensor)",
    "backward_ls": "backward_ls(Tensor grad_out, Tensor? f, Tensor gamma, Tensor scales, "
                   "ScalarType branch_dtype, int num_threads) -> (Tensor, Tensor)",
    # LayerScale in the compacted join (compact.py): out = x, out[kept_indices[i]] +=
    # (gamma*f_kept[i])*s; backward (grad_f_kept, grad_gamma), f_kept given when
    # grad_gamma is wanted (else None, and the second output is empty), as backward_ls
    "compact_forward_ls": "compact_forward_ls(Tensor x, Tensor f_kept, Tensor gamma, "
                          "Tensor kept_indices, float drop_prob, int mode, bool scale_by_keep, "
                          "int num_threads) -> Tensor",
    "compact_backward_ls": "compact_backward_ls(Tensor grad_out, Tensor? f_kept, Tensor gamma, "
                           "Tensor kept_indices, float drop_prob, int mode, bool scale_by_keep, "
                           "ScalarType branch_dtype, int num_threads) -> (Tensor, Tensor)",
    # residual join + norm (norm.py): r = x + drop_path(f), y = norm(r); with ls_gamma
    # (last, defaulting to None, so calls written before it still work)
    # r = x + drop_path(ls_gamma * f), whose backward is backward_norm_ls.
    "forward_norm": "forward_norm(Tensor x, Tensor f, Tensor? weight, Tensor? bias, int kind, "
                    "float eps, float drop_prob, int seed, int offset, int sample_base, int mode, "
                    "bool scale_by_keep, int num_threads, Tensor? ls_gamma=None) "
                    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    "inference_norm": "inference_norm(Tensor x, Tensor f, Tensor? weight, Tensor? bias, int kind, "
                      "float eps, float drop_prob, bool scale_by_keep, int num_threads, "
                      "Tensor? ls_gamma=None) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    "backward_norm": "backward_norm(Tensor grad_y, Tensor? grad_r, Tensor r, Tensor mean, "
                     "Tensor rstd, Tensor scales, Tensor? weight, int kind, float eps, "
                     "bool grad_x, bool grad_weight, bool grad_bias, int num_threads) "
                     "-> (Tensor, Tensor, Tensor, Tensor)",
    # f: the forward's branch input when grad_ls_gamma is wanted (else None, and the
    # last output is empty), as backward_ls's f
    "backward_norm_ls": "backward_norm_ls(Tensor grad_y, Tensor? grad_r, Tensor r, Tensor? f, "
                        "Tensor mean, Tensor rstd, Tensor scales, Tensor? weight, "
                        "Tensor ls_gamma, int kind, float eps, bool grad_x, bool grad_weight, "
                        "bool grad_bias, int num_threads) "
                        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
}



def _none():
    """An empty tensor standing for an output not asked for (a schema returns Tensors)."""
    return torch.empty(0)


def to_int64(u):
    """A uint64 as the int64 with the same bits."""
    u &= _lib.MASK64
    return u - (1 << 64) if u >= 1 << 63 else u


def _forward(x, f, drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads):
    params = _lib.make_params(drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads)
    return _kernels.residual_forward(x, f, params)


def _drop_path(x, drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads):
    params = _lib.make_params(drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads)
    return _kernels.drop_path_forward(x, params)


def _backward(grad_out, scales, branch_dtype, num_threads):
    return _kernels.branch_backward(grad_out, scales, branch_dtype, num_threads)


def _inference_add(x, f, drop_prob, scale_by_keep, num_threads):
    params = _lib.make_params(drop_prob, scale_by_keep=scale_by_keep, num_threads=num_threads)
    return _kernels.residual_inference(x, f, params)


def _compact_gather(x, drop_prob, seed, offset, sample_base, mode, num_threads):
    params = _lib.make_params(drop_prob, seed, offset, sample_base, mode, num_threads=num_threads)
    return _kernels.compact_gather(x, params)


def _compact_forward(x, f_kept, kept_indices, drop_prob, mode, scale_by_keep, num_threads):
    # s depends on drop_prob, mode, scale_by_keep and k only: no mask is drawn.
    params = _lib.make_params(drop_prob, mode=mode, scale_by_keep=scale_by_keep,
                              num_threads=num_threads)
    return _kernels.compact_forward(x, f_kept, kept_indices, params)


def _compact_backward(grad_out, kept_indices, drop_prob, mode, scale_by_keep, branch_dtype,
                      num_threads):
    params = _lib.make_params(drop_prob, mode=mode, scale_by_keep=scale_by_keep,
                              num_threads=num_threads)
    return _kernels.compact_backward(grad_out, kept_indices, branch_dtype, params)


def _compact_scatter_add(grad_x, grad_in_kept, kept_indices, num_threads):
    return _kernels.compact_scatter_add(grad_x, grad_in_kept, kept_indices, num_threads)


def _forward_ls(x, f, gamma, drop_prob, seed, offset, sample_base, mode, scale_by_keep,
                num_threads):
    params = _lib.make_params(drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads)
    return _kernels.ls_forward(x, f, gamma, params, inference=False)


def _inference_add_ls(x, f, gamma, drop_prob, scale_by_keep, num_threads):
    """(out, the scales a backward uses: 1, or keep without scale_by_keep)."""
    params = _lib.make_params(drop_prob, scale_by_keep=scale_by_keep, num_threads=num_threads)
    return _kernels.ls_forward(x, f, gamma, params, inference=True)


def _backward_ls(grad_out, f, gamma, scales, branch_dtype, num_threads):
    """(grad_f, grad_gamma); f (the forward's branch input) given: grad_gamma asked for."""
    grad_f, gg = _kernels.ls_backward(grad_out, f, gamma, scales, branch_dtype, num_threads)
    return grad_f, _none() if gg is None else gg


def _compact_forward_ls(x, f_kept, gamma, kept_indices, drop_prob, mode, scale_by_keep,
                        num_threads):
    # s depends on drop_prob, mode, scale_by_keep and k only: no mask is drawn.
    params = _lib.make_params(drop_prob, mode=mode, scale_by_keep=scale_by_keep,
                              num_threads=num_threads)
    return _kernels.compact_ls_forward(x, f_kept, gamma, kept_indices, params)


def _compact_backward_ls(grad_out, f_kept, gamma, kept_indices, drop_prob, mode, scale_by_keep,
                         branch_dtype, num_threads):
    """(grad_f_kept, grad_gamma); f_kept given: grad_gamma asked for."""
    params = _lib.make_params(drop_prob, mode=mode, scale_by_keep=scale_by_keep,
                              num_threads=num_threads)
    grad_f, gg = _kernels.compact_ls_backward(grad_out, f_kept, gamma, kept_indices, branch_dtype,
                                              params)
    return grad_f, _none() if gg is None else gg


def _forward_norm(x, f, weight, bias, kind, eps, drop_prob, seed, offset, sample_base, mode,
                  scale_by_keep, num_threads, ls_gamma=None):
    params = _lib.make_params(drop_prob, seed, offset, sample_base, mode, scale_by_keep, num_threads)
    return _kernels.norm_forward(x, f, weight, bias, kind, eps, params, inference=False,
                                 ls_gamma=ls_gamma)


def _inference_norm(x, f, weight, bias, kind, eps, drop_prob, scale_by_keep, num_threads,
                    ls_gamma=None):
    params = _lib.make_params(drop_prob, scale_by_keep=scale_by_keep, num_threads=num_threads)
    return _kernels.norm_forward(x, f, weight, bias, kind, eps, params, inference=True,
                                 ls_gamma=ls_gamma)


def _backward_norm(grad_y, grad_r, r, mean, rstd, scales, weight, kind, eps, grad_x, grad_weight,
                   grad_bias, num_threads):
    out = _kernels.norm_backward(grad_y, grad_r, r, mean, rstd, scales, weight, kind, eps, grad_x,
                                 grad_weight, grad_bias, num_threads)
    return tuple(_none() if t is None else t for t in out[:4])


def _backward_norm_ls(grad_y, grad_r, r, f, mean, rstd, scales, weight, ls_gamma, kind, eps,
                      grad_x, grad_weight, grad_bias, num_threads):
    """(grad_x, grad_f, grad_weight, grad_bias, grad_ls_gamma); f given: grad_ls_gamma
    asked for."""
    out = _kernels.norm_backward(grad_y, grad_r, r, mean, rstd, scales, weight, kind, eps, grad_x,
                                 grad_weight, grad_bias, num_threads, ls_gamma=ls_gamma, f=f)
    return tuple(_none() if t is None else t for t in out)


_IMPLS = {"forward": _forward, "drop_path": _drop_path, "backward": _backward,
          "inference_add": _inference_add, "compact_gather": _compact_gather,
          "compact_forward": _compact_forward, "compact_backward": _compact_backward,
          "compact_scatter_add": _compact_scatter_add, "forward_ls": _forward_ls,
          "inference_add_ls": _inference_add_ls, "backward_ls": _backward_ls,
          "compact_forward_ls": _compact_forward_ls, "compact_backward_ls": _compact_backward_ls,
          "forward_norm": _forward_norm, "inference_norm": _inference_norm,
          "backward_norm": _backward_norm, "backward_norm_ls": _backward_norm_ls}


def _register():
    library = getattr(torch, "library", None)
    if library is None or not hasattr(library, "Library"):
        return None
    try:
        lib = library.Library(NAMESPACE, "DEF")
        for name, schema in _SCHEMAS.items():
            lib.define(schema)
            lib.impl(name, _IMPLS[name], "CPU")
    except RuntimeError:  # namespace or operator already defined
        return None
    return lib


_library = _register()  # kept alive: the registrations go with it
REGISTERED = _library is not None

if REGISTERED:
    forward = torch.ops.droppath.forward
    drop_path = torch.ops.droppath.drop_path
    backward = torch.ops.droppath.backward
    inference_add = torch.ops.droppath.inference_add
    compact_gather = torch.ops.droppath.compact_gather
    compact_forward = torch.ops.droppath.compact_forward
    compact_backward = torch.ops.droppath.compact_backward
    compact_scatter_add = torch.ops.droppath.compact_scatter_add
    forward_ls = torch.ops.droppath.forward_ls
    inference_add_ls = torch.ops.droppath.inference_add_ls
    backward_ls = torch.ops.droppath.backward_ls
    compact_forward_ls = torch.ops.droppath.compact_forward_ls
    compact_backward_ls = torch.ops.droppath.compact_backward_ls
    forward_norm = torch.ops.droppath.forward_norm
    inference_norm = torch.ops.droppath.inference_norm
    backward_norm = torch.ops.droppath.backward_norm
    backward_norm_ls = torch.ops.droppath.backward_norm_ls
else:
    forward, drop_path, backward, inference_add = _forward, _drop_path, _backward, _inference_add
    compact_gather, compact_forward = _compact_gather, _compact_forward
    compact_backward, compact_scatter_add = _compact_backward, _compact_scatter_add
    forward_ls, inference_add_ls, backward_ls = _forward_ls, _inference_add_ls, _backward_ls
    compact_forward_ls, compact_backward_ls = _compact_forward_ls, _compact_backward_ls
    forward_norm, inference_norm, backward_norm = _forward_norm, _inference_norm, _backward_norm
    backward_norm_ls = _backward_norm_ls
