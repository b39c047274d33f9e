"""Every error path: arguments, tensors, the library lookup, C status codes, double backward."""

import _ctypes
import os
import subprocess
import sys

import pytest
import torch

import droppath
from droppath import _kernels
from droppath import _lib

X = torch.randn(4, 6)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf"), "0.1", None, True])
def test_bad_probabilities(p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        droppath.DropPath(p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        droppath.ResidualDropPath(p)
    with pytest.raises(ValueError, match="drop probability has to be between 0 and 1"):
        droppath.StochasticDepth(p, "row")
    with pytest.raises(ValueError):
        droppath.drop_path_add(X, X, p)
    with pytest.raises(ValueError):
        droppath.drop_path(X, p, True)
    with pytest.raises(ValueError):
        droppath.mask(4, p, seed=0)


def test_bad_probability_set_after_construction():
    m = droppath.StochasticDepth(0.1, "row")
    m.p = 1.2  # torchvision checks at every call, in eval mode too
    for mode in (m.train(), m.eval()):
        with pytest.raises(ValueError, match="drop probability"):
            mode(X)
    d = droppath.DropPath(0.1)
    d.drop_prob = -1.0
    with pytest.raises(ValueError):
        d(X)


@pytest.mark.parametrize("mode", ["col", "ROW", None, 0])
def test_bad_modes(mode):
    with pytest.raises(ValueError, match="mode has to be either 'batch' or 'row'"):
        droppath.StochasticDepth(0.1, mode)
    with pytest.raises(ValueError, match="mode"):
        droppath.ResidualDropPath(0.1, mode=mode)
    with pytest.raises(ValueError, match="mode"):
        droppath.drop_path_add(X, X, 0.1, mode=mode)
    with pytest.raises(ValueError, match="mode"):
        droppath.stochastic_depth(X, 0.1, mode, training=False)
    m = droppath.StochasticDepth(0.1, "row")
    m.mode = mode
    with pytest.raises(ValueError, match="mode"):
        m(X)


def test_other_devices_get_a_clear_error():
    meta = torch.empty(4, 6, device="meta")
    with pytest.raises(RuntimeError, match="CPU tensors only; x is on meta"):
        droppath.drop_path_add(meta, meta, 0.1)
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        droppath.DropPath(0.1)(meta)
    with pytest.raises(RuntimeError, match="f is on meta"):
        droppath.drop_path_add(X, meta, 0.1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32, torch.complex64, torch.bool])
def test_unsupported_dtypes(dtype):
    t = torch.zeros(4, 6, dtype=dtype)
    with pytest.raises(TypeError, match="float32, bfloat16 and float16"):
        droppath.drop_path(t, 0.1, True)
    with pytest.raises(TypeError, match="float32, bfloat16 and float16"):
        droppath.drop_path_add(t, t, 0.1)


@pytest.mark.parametrize("xd,fd", [(torch.float16, torch.float32), (torch.bfloat16, torch.float16),
                                   (torch.bfloat16, torch.float32)])
def test_unsupported_dtype_pairs(xd, fd):
    with pytest.raises(TypeError, match="is not supported"):
        droppath.drop_path_add(X.to(xd), X.to(fd), 0.1)


def test_bad_tensors():
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        droppath.drop_path_add([1.0], X, 0.1)
    with pytest.raises(TypeError, match="strided"):
        droppath.drop_path(X.to_sparse(), 0.1, True)
    with pytest.raises(ValueError, match="batch dimension"):
        droppath.drop_path(torch.tensor(1.0), 0.1, True)
    with pytest.raises(ValueError, match="same shape"):
        droppath.drop_path_add(X, torch.randn(4, 1), 0.1)
    with pytest.raises(ValueError, match="batch_dim"):
        droppath.drop_path_add(X, X, 0.1, batch_dim=2)
    with pytest.raises(ValueError, match="batch_dim"):
        droppath.drop_path(X, 0.1, True, batch_dim=1.0)


@pytest.mark.parametrize("name", ["seed", "offset", "sample_base"])
@pytest.mark.parametrize("value", [2**64, -2**63 - 1, 1.5, "3", True, None])
def test_bad_counters(name, value):
    if name == "seed" and value is None:
        return  # seed=None means "draw one"
    with pytest.raises(ValueError, match=name):
        droppath.drop_path_add(X, X, 0.1, **{name: value})
    with pytest.raises(ValueError, match=name):
        droppath.mask(4, 0.1, **dict(dict(seed=0), **{name: value}))


def test_counters_in_range_are_taken_as_uint64():
    a = droppath.drop_path_add(X, X, 0.5, seed=-1, offset=-2**63)
    b = droppath.drop_path_add(X, X, 0.5, seed=2**64 - 1, offset=2**63)
    assert torch.equal(a, b)


@pytest.mark.parametrize("n", [0, -1, 1.5, True, 2**31])
def test_bad_thread_counts(n):
    with pytest.raises(ValueError, match="num_threads"):
        droppath.drop_path_add(X, X, 0.1, num_threads=n)
    with pytest.raises(ValueError, match="num_threads"):
        droppath.DropPath(0.1, num_threads=n)


def test_bad_mask_and_schedule_arguments():
    with pytest.raises(ValueError, match="batch"):
        droppath.mask(-1, 0.1, seed=0)
    with pytest.raises(ValueError, match="rule"):
        droppath.drop_rates("cosine", 0.1, 4)
    with pytest.raises(ValueError, match="depth"):
        droppath.drop_rates("linspace", 0.1, -1)
    with pytest.raises(ValueError, match="rate"):
        droppath.drop_rates("linspace", 1.1, 4)


def test_c_status_becomes_droppath_error():
    params = _lib.make_params(0.5)
    params.drop_prob = 2.0  # past the Python checks: the library's own check answers
    with pytest.raises(droppath.DropPathError, match=r"dp_mask failed: .*DP_ERR_BAD_PROBABILITY"):
        _kernels.mask(params, 4)
    params = _lib.make_params(0.5)
    params.mode = 7
    with pytest.raises(droppath.DropPathError, match="DP_ERR_BAD_MODE") as e:
        _kernels.residual_forward(X, X, params)
    assert e.value.status == 6


def test_double_backward_is_refused():
    x = torch.randn(4, 6, requires_grad=True)
    out = droppath.drop_path_add(x, x * 2, 0.5, seed=1)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        g.sum().backward()


# ---------------------------------------------------------------- finding the library

def test_explicit_path_that_does_not_load():
    with pytest.raises(droppath.LibraryNotFoundError) as e:
        _lib.load(environ={"DROPPATH_LIBRARY": "/nonexistent/libdroppath.so.0"})
    assert "DROPPATH_LIBRARY is set but does not load" in str(e.value)
    assert "/nonexistent/libdroppath.so.0" in str(e.value)


def test_every_place_tried_is_listed(tmp_path):
    with pytest.raises(droppath.LibraryNotFoundError) as e:
        _lib.load(environ={}, bundle_dir=str(tmp_path), system_names=("libdroppath-none.so.0",),
                  find_library=lambda name: None)
    msg = str(e.value)
    for part in ("DROPPATH_LIBRARY: not set", str(tmp_path) + ": no copy carried",
                 "libdroppath-none.so.0:", 'find_library("droppath"): nothing found'):
        assert part in msg
    assert msg.index("not set") < msg.index("no copy") < msg.index("libdroppath-none")


def test_a_library_without_the_api_is_skipped(tmp_path):
    other = _ctypes.__file__  # a shared object that is not libdroppath
    os.symlink(other, tmp_path / "libdroppath-fake.so")
    with pytest.raises(droppath.LibraryNotFoundError, match="loaded, but .*dp_version_number"):
        _lib.load(environ={}, bundle_dir=str(tmp_path), system_names=(),
                  find_library=lambda name: None)
    with pytest.raises(droppath.LibraryNotFoundError, match="is set but does not load"):
        _lib.load(environ={"DROPPATH_LIBRARY": other})


def test_bundled_then_system_order(tmp_path):
    real = _lib.library_path()
    os.symlink(real, tmp_path / "libdroppath.so.0")
    _, where = _lib.load(environ={}, bundle_dir=str(tmp_path), system_names=("nothing.so",))
    assert where == str(tmp_path / "libdroppath.so.0")
    _, where = _lib.load(environ={}, bundle_dir=str(tmp_path / "none"), system_names=(real,))
    assert where == real
    _, where = _lib.load(environ={}, bundle_dir=str(tmp_path / "none"), system_names=(),
                         find_library=lambda name: real)
    assert where == real


@pytest.mark.parametrize("number,ok", [(100, True), (905, True), (99, False), (10000, False)])
def test_version_check(number, ok):
    if ok:
        _lib.check_version(number, "lib")
    else:
        with pytest.raises(droppath.LibraryNotFoundError, match="needs 0.x, at least 0.1.0"):
            _lib.check_version(number, "lib")


def test_import_works_and_first_use_reports(tmp_path):
    code = ("import droppath, torch\n"
            "try:\n"
            "    droppath.DropPath(0.5, seed=1)(torch.ones(2, 2))\n"
            "except droppath.LibraryNotFoundError as e:\n"
            "    print('ERR', e)\n")
    env = dict(os.environ, DROPPATH_LIBRARY=str(tmp_path / "missing.so"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.dirname(
        os.path.dirname(droppath.__file__)), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ERR libdroppath: DROPPATH_LIBRARY is set but does not load")
    assert "missing.so" in out.stdout
