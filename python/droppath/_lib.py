"""Finding libdroppath and calling it through ctypes.

The library is looked for, in this order:

1. the path in the environment variable ``DROPPATH_LIBRARY`` (when it is set
   and does not load, that is an error: an explicit choice is never skipped);
2. the copy the package carries (``droppath/_libs/``, put there when the
   package was built with ``DROPPATH_BUNDLE_LIBRARY`` set);
3. the system loader: ``libdroppath.so.0``, then what
   ``ctypes.util.find_library("droppath")`` names.

It is loaded on first use, so ``import droppath`` works without it; a failure
raises :class:`LibraryNotFoundError` naming every place tried and why.
"""

import ctypes
import ctypes.util
import os
import threading

ENV_VAR = "DROPPATH_LIBRARY"
BUNDLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_libs")
SYSTEM_NAMES = ("libdroppath.so.0",)
# The C API this package was written against: dp_version_number() is
# MAJOR*10000 + MINOR*100 + PATCH; a different major, or a library older than
# this, may lay out dp_params differently or lack a function.
ABI_MAJOR = 0
MIN_VERSION = 100  # 0.1.0

MASK64 = (1 << 64) - 1

# dp_status values (include/droppath/droppath.h).
STATUS_NAMES = (
    "DP_OK", "DP_ERR_NULL_POINTER", "DP_ERR_BAD_PROBABILITY", "DP_ERR_BAD_STRIDE",
    "DP_ERR_SIZE_OVERFLOW", "DP_ERR_OVERLAP", "DP_ERR_BAD_MODE", "DP_ERR_BAD_DTYPE",
    "DP_ERR_BAD_FLAGS", "DP_ERR_BAD_ISA", "DP_ERR_ISA_UNSUPPORTED", "DP_ERR_BAD_ARGUMENT",
    "DP_ERR_MISALIGNED")

DP_F32, DP_BF16, DP_F16 = 0, 1, 2
MODE_ROW, MODE_BATCH, MODE_EXACT_K = 0, 1, 2
BWD_ACCUMULATE_GRAD_F = 1
BWD_ACCUMULATE_GRAD_X = 2
NORM_LAYER, NORM_RMS = 0, 1


class LibraryNotFoundError(ImportError):
    """libdroppath could not be loaded; the message lists every attempt."""


class DropPathError(RuntimeError):
    """A libdroppath call returned an error status."""

    def __init__(self, function, status, text):
        name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else "status %d" % status
        super().__init__("%s failed: %s (%s)" % (function, text, name))
        self.function = function
        self.status = status


class Params(ctypes.Structure):
    """struct dp_params."""
    _fields_ = [("drop_prob", ctypes.c_double), ("seed", ctypes.c_uint64),
                ("offset", ctypes.c_uint64), ("sample_base", ctypes.c_uint64),
                ("mode", ctypes.c_int), ("scale_by_keep", ctypes.c_int),
                ("num_threads", ctypes.c_int), ("flags", ctypes.c_uint32)]


class Shape(ctypes.Structure):
    """struct dp_shape."""
    _fields_ = [("batch", ctypes.c_size_t), ("seq", ctypes.c_size_t), ("dim", ctypes.c_size_t)]


class TensorView(ctypes.Structure):
    """struct dp_tensor."""
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int),
                ("sample_stride", ctypes.c_size_t), ("seq_stride", ctypes.c_size_t)]


class Norm(ctypes.Structure):
    """struct dp_norm (the norm of dp_forward_norm and friends)."""
    _fields_ = [("kind", ctypes.c_int), ("eps", ctypes.c_float), ("gamma", ctypes.c_void_p),
                ("beta", ctypes.c_void_p), ("mean", ctypes.c_void_p), ("rstd", ctypes.c_void_p),
                ("ls_gamma", ctypes.c_void_p)]  # NULL: no LayerScale in the join


_c_float_p = ctypes.POINTER(ctypes.c_float)
_c_size_p = ctypes.POINTER(ctypes.c_size_t)
_status = ctypes.c_int

# name: (restype, argtypes)
_SIGNATURES = {
    "dp_version_number": (ctypes.c_int, []),
    "dp_version_string": (ctypes.c_char_p, []),
    "dp_status_string": (ctypes.c_char_p, [ctypes.c_int]),
    "dp_params_init": (None, [ctypes.POINTER(Params)]),
    "dp_forward": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView, TensorView,
                             ctypes.c_void_p]),
    "dp_inference_add": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                   TensorView]),
    "dp_drop_path": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                               ctypes.c_void_p]),
    "dp_backward": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView, TensorView,
                              ctypes.c_void_p, ctypes.c_uint32]),
    "dp_mask": (_status, [ctypes.POINTER(Params), ctypes.c_size_t, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]),
    "dp_drop_rates": (_status, [ctypes.c_int, ctypes.c_double, ctypes.c_size_t,
                                ctypes.c_void_p]),
    "dp_forward_ls": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView, TensorView,
                                ctypes.c_void_p, ctypes.c_void_p]),
    "dp_inference_add_ls": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                      TensorView, ctypes.c_void_p]),
    "dp_backward_ls": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView, TensorView,
                                 TensorView, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_uint32]),
    "dp_norm_init": (None, [ctypes.POINTER(Norm)]),
    "dp_forward_norm": (_status, [ctypes.POINTER(Params), Shape, ctypes.POINTER(Norm), TensorView,
                                  TensorView, TensorView, TensorView, ctypes.c_void_p]),
    "dp_inference_norm": (_status, [ctypes.POINTER(Params), Shape, ctypes.POINTER(Norm),
                                    TensorView, TensorView, TensorView, TensorView]),
    "dp_backward_norm": (_status, [ctypes.POINTER(Params), Shape, ctypes.POINTER(Norm), TensorView,
                                   TensorView, TensorView, TensorView, TensorView,
                                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_uint32]),
    "dp_isa_name": (ctypes.c_char_p, [ctypes.c_int]),
    "dp_active_isa": (ctypes.c_int, []),
    "dp_has_openmp": (ctypes.c_int, []),
    "dp_set_num_threads": (_status, [ctypes.c_int]),
}

# Bound when the library has them: sample compaction (with LayerScale too) and
# LayerScale's gradient in the fused norm came with 0.2.0 (some builds that still said 0.1.0 had
# part of them), so a 0.1.0 library may lack them; such a library still serves
# every other call, and the feature that needs one says what is missing
# (optional_function).
_size_p = ctypes.c_void_p  # size_t arrays, passed as a tensor's data pointer
_OPTIONAL_SIGNATURES = {
    "dp_compact_gather": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                    _size_p, _size_p]),
    "dp_compact_forward": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                     TensorView, ctypes.c_size_t, _size_p]),
    "dp_compact_backward": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                      TensorView, ctypes.c_size_t, _size_p, ctypes.c_uint32]),
    "dp_compact_scatter_add": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                         ctypes.c_size_t, _size_p]),
    # LayerScale in the compacted join: (params, shape, out, x, f_kept, gamma, kept_count,
    # kept_indices) and (params, shape, grad_f_kept, grad_x, grad_out, f_kept, gamma,
    # grad_gamma, kept_count, kept_indices, flags)
    "dp_compact_forward_ls": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                        TensorView, ctypes.c_void_p, ctypes.c_size_t, _size_p]),
    "dp_compact_backward_ls": (_status, [ctypes.POINTER(Params), Shape, TensorView, TensorView,
                                         TensorView, TensorView, ctypes.c_void_p,
                                         ctypes.c_void_p, ctypes.c_size_t, _size_p,
                                         ctypes.c_uint32]),
    # The subset forms (dp_*_norm_subset*) are not called by the package: not bound.
    # (params, shape, norm, grad_f, grad_x, grad_y, r, grad_r_in, f, scales, grad_gamma,
    #  grad_beta, grad_ls_gamma, flags)
    "dp_backward_norm_ls": (_status, [ctypes.POINTER(Params), Shape, ctypes.POINTER(Norm),
                                      TensorView, TensorView, TensorView, TensorView, TensorView,
                                      TensorView, ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32]),
}
# What a library without the optional symbol predates, for the error message.
_OPTIONAL_FEATURES = {
    "dp_compact_gather": "sample compaction", "dp_compact_forward": "sample compaction",
    "dp_compact_backward": "sample compaction", "dp_compact_scatter_add": "sample compaction",
    "dp_backward_norm_ls": "LayerScale in the fused residual + norm",
    "dp_compact_forward_ls": "LayerScale in sample compaction",
    "dp_compact_backward_ls": "LayerScale in sample compaction",
}


def _bundled_candidates(bundle_dir):
    try:
        names = sorted(os.listdir(bundle_dir))
    except OSError:
        return []
    return [os.path.join(bundle_dir, n) for n in names if n.startswith("libdroppath")]


def check_version(number, where):
    """Raise LibraryNotFoundError when a library's version is not one this package can call."""
    if number // 10000 != ABI_MAJOR or number < MIN_VERSION:
        raise LibraryNotFoundError(
            "%s is libdroppath %d.%d.%d; this package needs %d.x, at least %d.%d.%d" %
            (where, number // 10000, number // 100 % 100, number % 100, ABI_MAJOR,
             MIN_VERSION // 10000, MIN_VERSION // 100 % 100, MIN_VERSION % 100))


def _bind(cdll):
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(cdll, name)  # AttributeError: symbol missing
        fn.restype = restype
        fn.argtypes = argtypes
    for name, (restype, argtypes) in _OPTIONAL_SIGNATURES.items():
        fn = getattr(cdll, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes
    return cdll


def _try_load(spec, tried):
    """Load and bind one candidate; None (and a line in tried) if it fails."""
    try:
        cdll = ctypes.CDLL(spec)
    except OSError as e:
        tried.append("%s: %s" % (spec, e))
        return None
    try:
        _bind(cdll)
        check_version(cdll.dp_version_number(), spec)
    except (AttributeError, LibraryNotFoundError) as e:
        tried.append("%s: loaded, but %s" % (spec, e))
        return None
    return cdll


def load(environ=None, bundle_dir=BUNDLE_DIR, system_names=SYSTEM_NAMES, find_library=None):
    """Find and load libdroppath in the documented order; returns (CDLL, what was loaded).

    The arguments exist for tests; the defaults are the real places."""
    environ = os.environ if environ is None else environ
    find_library = ctypes.util.find_library if find_library is None else find_library
    tried = []
    explicit = environ.get(ENV_VAR)
    if explicit:
        cdll = _try_load(explicit, tried)
        if cdll is None:
            raise LibraryNotFoundError(
                "libdroppath: %s is set but does not load:\n  %s" % (ENV_VAR, tried[0]))
        return cdll, explicit
    tried.append("%s: not set" % ENV_VAR)
    bundled = _bundled_candidates(bundle_dir)
    if not bundled:
        tried.append("%s: no copy carried by the package" % bundle_dir)
    for spec in bundled + list(system_names):
        cdll = _try_load(spec, tried)
        if cdll is not None:
            return cdll, spec
    found = find_library("droppath")
    if not found:
        tried.append('ctypes.util.find_library("droppath"): nothing found')
    elif found not in system_names:
        cdll = _try_load(found, tried)
        if cdll is not None:
            return cdll, found
    raise LibraryNotFoundError(
        "libdroppath not found; tried, in order:\n  " + "\n  ".join(tried) +
        "\nBuild it (README \"Building and installing\") and set %s to its path, install it "
        "system-wide, or build this package with DROPPATH_BUNDLE_LIBRARY set." % ENV_VAR)


_lock = threading.Lock()
_loaded = None


def lib():
    """The loaded library (loads it on the first call)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = load()
    return _loaded[0]


def library_path():
    """What was loaded: a path or the name the system loader resolved."""
    lib()
    return _loaded[1]


def optional_function(name):
    """An entry point of _OPTIONAL_SIGNATURES, or LibraryNotFoundError naming the
    feature when the loaded library predates it."""
    fn = getattr(lib(), name, None)
    if fn is None:
        raise LibraryNotFoundError(
            "%s has no %s: it predates %s; build libdroppath from a source tree that has it "
            "(README \"Building and installing\")" % (library_path(), name,
                                                      _OPTIONAL_FEATURES[name]))
    return fn


def compact_function(name):
    """A sample-compaction entry point (optional_function)."""
    return optional_function(name)


def compact_ls_functions():
    """(dp_compact_forward_ls, dp_compact_backward_ls), or LibraryNotFoundError.
    Asked for both before a compacted LayerScale call does any work, so a
    library with one and not the other (or neither) fails before the block
    runs, not halfway through a training step."""
    return (optional_function("dp_compact_forward_ls"),
            optional_function("dp_compact_backward_ls"))


def norm_ls_function():
    """dp_backward_norm_ls, or LibraryNotFoundError.  Every use of LayerScale in the
    fused norm asks for it, the forward too: dp_norm.ls_gamma came into the
    library before dp_backward_norm_ls, but a library older than both would
    ignore the field and join without LayerScale, silently; one that has
    dp_backward_norm_ls honours it."""
    return optional_function("dp_backward_norm_ls")


def check(function, status):
    """Raise DropPathError for a status other than DP_OK."""
    if status != 0:
        text = lib().dp_status_string(status).decode()
        raise DropPathError(function, status, text)


def make_params(drop_prob, seed=0, offset=0, sample_base=0, mode=MODE_ROW, scale_by_keep=True,
                num_threads=0):
    p = Params()
    lib().dp_params_init(ctypes.byref(p))
    p.drop_prob = float(drop_prob)
    p.seed = seed & MASK64
    p.offset = offset & MASK64
    p.sample_base = sample_base & MASK64
    p.mode = mode
    p.scale_by_keep = 1 if scale_by_keep else 0
    p.num_threads = num_threads
    return p
