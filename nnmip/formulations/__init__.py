"""The mathematics: functions that turn IR nodes (with data, bounds and input sets) into rows and columns of a
:class:`~nnmip.model.MatrixModel`.  See docs/formulations.md for the derivations.

One registry (:data:`nnmip.formulations.common.FORMULATIONS`) holds every formulation under
``(problem, subject, method)`` with one signature; formulations import the IR, the model and each other in one
direction only, and never solve anything.
"""
