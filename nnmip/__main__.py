"""``python -m nnmip``: the ``nnmip`` command (:mod:`nnmip.cli`)."""

import runpy

runpy.run_module("nnmip.cli", run_name="__main__", alter_sys=True)
