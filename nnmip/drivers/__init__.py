"""The drivers: the only code that runs solves (task running, training and its strategies, verification,
compression, evaluation, the cut loop of the tangent emissions).  Formulations build models; drivers hand them to
backends and check what comes back with the numpy forward pass.
"""
