"""DropPath / Stochastic Depth for PyTorch on CPUs, backed by libdroppath.

    import droppath
    drop = droppath.DropPath(0.1)                  # timm's DropPath
    sd = droppath.StochasticDepth(0.1, "row")      # torchvision's StochasticDepth
    join = droppath.ResidualDropPath(0.1)          # x + drop_path(f) in one pass
    out = join(x, f)
    blk = droppath.DropPathBlock(mlp, 0.1)         # x + drop_path(mlp(x)), mlp on kept samples only
    out = blk(x)
    blk = droppath.DropPathBlock(mlp, 0.1, dim=768, ls_init_values=1e-5)  # LayerScale in the join
    ls = droppath.LayerScaleDropPath(768, 1e-5, 0.1)   # x + drop_path(gamma * f)
    norm = droppath.ResidualNorm(768, "layer", drop_prob=0.1)
    r, y = norm(x, f)                              # r = x + drop_path(f), y = LayerNorm(r)

The library is found through DROPPATH_LIBRARY, then a copy carried by the
package, then the system loader (see droppath._lib), on first use.
"""

from ._lib import DropPathError, LibraryNotFoundError, library_path
from ._ops import REGISTERED as TORCH_OPS_REGISTERED
from ._pool import empty_cache
from .compact import drop_path_block
from .functional import drop_path, drop_path_add, drop_rates, mask, stochastic_depth
from .layerscale import LayerScaleDropPath, drop_path_add_ls
from .modules import (DropPath, DropPathBlock, ResidualDropPath, StochasticDepth, mask_modules,
                      seed_all, set_sample_base)
from .norm import ResidualNorm, drop_path_add_norm

__version__ = "0.2.0"

__all__ = [
    "DropPath", "StochasticDepth", "ResidualDropPath", "DropPathBlock", "drop_path",
    "drop_path_add", "drop_path_block", "stochastic_depth", "mask", "drop_rates",
    "set_sample_base", "seed_all", "mask_modules", "library_path", "library_info", "empty_cache",
    "DropPathError", "LibraryNotFoundError", "TORCH_OPS_REGISTERED",
    "LayerScaleDropPath", "drop_path_add_ls", "ResidualNorm", "drop_path_add_norm",
]


def library_info():
    """What the package runs on: path, version, active ISA, OpenMP."""
    from . import _lib
    lib = _lib.lib()
    return {
        "path": _lib.library_path(),
        "version": lib.dp_version_string().decode(),
        "isa": lib.dp_isa_name(lib.dp_active_isa()).decode(),
        "openmp": bool(lib.dp_has_openmp()),
    }
