"""`pip install ./python` into a venv over the system's torch, offline (--no-index, with
pip's build isolation on), with and without a bundled library."""

import importlib.util
import os
import subprocess
import sys

import pytest

import droppath

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = """
import os, sys, torch, droppath
assert droppath.__file__.startswith(sys.prefix), droppath.__file__
x, f = torch.randn(16, 8), torch.randn(16, 8)
try:
    out = droppath.drop_path_add(x, f, 0.5, seed=3)
except droppath.LibraryNotFoundError as e:
    print("NOTFOUND", e)
    raise SystemExit(0)
keep, scales = droppath.mask(16, 0.5, seed=3)
assert torch.equal(out, x + f * scales.view(16, 1))
print("LOADED", droppath.library_info()["path"])
"""


def _run(args, env, cwd):
    out = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, "%s\n%s\n%s" % (args, out.stdout, out.stderr)
    return out.stdout


@pytest.mark.skipif(importlib.util.find_spec("ensurepip") is None, reason="no venv/ensurepip")
def test_offline_pip_install_into_a_venv(tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], None, tmp_path)
    pip, python = str(venv / "bin" / "pip"), str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DROPPATH_", "PIP_"))}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")

    # Carrying the library: found with no environment variable.
    bundled = dict(env, DROPPATH_BUNDLE_LIBRARY=droppath.library_path())
    _run([pip, "install", PYTHON_DIR], bundled, tmp_path)
    out = _run([python, "-c", CHECK], env, tmp_path)
    assert out.startswith("LOADED " + str(venv)), out

    # Without a copy: DROPPATH_LIBRARY or the system loader.
    _run([pip, "install", "--force-reinstall", "--no-deps", PYTHON_DIR], env, tmp_path)
    out = _run([python, "-c", CHECK], env, tmp_path)
    assert out.startswith("NOTFOUND") and "no copy carried by the package" in out or \
        out.startswith("LOADED") and str(venv) not in out, out  # a system-wide install
    out = _run([python, "-c", CHECK], dict(env, DROPPATH_LIBRARY=droppath.library_path()),
               tmp_path)
    assert out.startswith("LOADED " + droppath.library_path()), out
