"""A PEP 517 / PEP 660 build backend for the droppath package, standard library only.

Why not setuptools: pip builds in an isolated environment and would fetch
the backend from a package index, which an offline machine does not have.
This backend is part of the source tree (pyproject.toml's backend-path), so
``pip install ./python`` builds with nothing downloaded.

It writes a wheel of the droppath/ package.  With DROPPATH_BUNDLE_LIBRARY set
to a libdroppath shared library at build time, the wheel carries a copy in
droppath/_libs/ (found before the system's, after DROPPATH_LIBRARY) and is
tagged for this platform.  Metadata comes from pyproject.toml's [project].
"""

import base64
import hashlib
import io
import os
import sysconfig
import tarfile
import zipfile

try:
    import tomllib
except ImportError:  # Python < 3.11
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "droppath"
BUNDLE_VAR = "DROPPATH_BUNDLE_LIBRARY"
# A fixed time for every archive member, so two builds of one tree are the same bytes.
EPOCH = (2020, 1, 1, 0, 0, 0)


def _project():
    if tomllib is None:
        raise RuntimeError("building droppath needs Python >= 3.11 (tomllib) or the tomli package")
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)["project"]


def _metadata():
    p = _project()
    lines = ["Metadata-Version: 2.1", "Name: " + p["name"], "Version: " + p["version"],
             "Summary: " + p.get("description", "")]
    if "requires-python" in p:
        lines.append("Requires-Python: " + p["requires-python"])
    lines += ["Requires-Dist: " + d for d in p.get("dependencies", [])]
    readme = p.get("readme")
    if readme:
        lines.append("Description-Content-Type: text/markdown")
    text = "\n".join(lines) + "\n"
    if readme:
        with open(os.path.join(HERE, readme), encoding="utf-8") as fh:
            text += "\n" + fh.read()
    return p["name"], p["version"], text


def _bundled_library():
    path = os.environ.get(BUNDLE_VAR)
    if not path:
        return None
    if not os.path.isabs(path):
        path = os.path.join(os.environ.get("PWD", os.getcwd()), path)
    if not os.path.isfile(path):
        raise RuntimeError("%s=%s: no such file" % (BUNDLE_VAR, path))
    return os.path.realpath(path)


def _tag(bundled):
    if not bundled:
        return "py3-none-any"
    return "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _package_files():
    """(archive name, path) of every source file of the package."""
    root = os.path.join(HERE, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "_libs"))
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, HERE).replace(os.sep, "/"), path


class _Wheel:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        self.record = []

    def add(self, name, data, mode=0o644):
        info = zipfile.ZipInfo(name, EPOCH)
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.record.append("%s,sha256=%s,%d" % (name, digest, len(data)))

    def close(self, dist_info):
        name = dist_info + "/RECORD"
        self.record.append(name + ",,")
        info = zipfile.ZipInfo(name, EPOCH)
        info.external_attr = 0o100644 << 16
        self.zip.writestr(info, "\n".join(self.record) + "\n")
        self.zip.close()


def _build(wheel_directory, editable):
    name, version, metadata = _metadata()
    bundled = None if editable else _bundled_library()
    tag = _tag(bundled)
    filename = "%s-%s-%s.whl" % (name, version, tag)
    dist_info = "%s-%s.dist-info" % (name, version)
    wheel = _Wheel(os.path.join(wheel_directory, filename))
    if editable:  # PEP 660: the source tree goes on sys.path
        wheel.add("%s_editable.pth" % name, (HERE + "\n").encode())
    else:
        for arcname, path in _package_files():
            with open(path, "rb") as fh:
                wheel.add(arcname, fh.read())
        if bundled:
            with open(bundled, "rb") as fh:
                wheel.add("%s/_libs/libdroppath.so.0" % PACKAGE, fh.read(), 0o755)
    wheel.add(dist_info + "/METADATA", metadata.encode())
    wheel.add(dist_info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: droppath_build\n"
                                     "Root-Is-Purelib: %s\nTag: %s\n"
                                     % ("false" if bundled else "true", tag)).encode())
    wheel.add(dist_info + "/top_level.txt", (PACKAGE + "\n").encode())
    wheel.close(dist_info)
    return filename


# ---------------------------------------------------------------- PEP 517 hooks

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory, config_settings=None):
    name, version, metadata = _metadata()
    base = "%s-%s" % (name, version)
    filename = base + ".tar.gz"
    members = [("pyproject.toml", os.path.join(HERE, "pyproject.toml")),
               ("README.md", os.path.join(HERE, "README.md")),
               ("build_backend/droppath_build.py", os.path.abspath(__file__))]
    members += list(_package_files())
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for arcname, path in members:
            tar.add(path, arcname="%s/%s" % (base, arcname))
        data = metadata.encode()
        info = tarfile.TarInfo("%s/PKG-INFO" % base)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return filename
