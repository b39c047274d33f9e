"""Run the tests against the package in this source tree and the library named by
DROPPATH_LIBRARY (tools/test.sh sets it to the library it just built)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYTHON_DIR)
for path in (HERE, PYTHON_DIR, os.path.join(PYTHON_DIR, "examples"), os.path.join(REPO, "tools")):
    if path not in sys.path:
        sys.path.insert(0, path)
