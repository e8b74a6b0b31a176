"""The mathematics: functions that turn IR nodes (with data, bounds and input sets) into rows and columns of a
:class:`~nnmip.model.MatrixModel`.  See docs/formulations.md for the derivations.
"""
