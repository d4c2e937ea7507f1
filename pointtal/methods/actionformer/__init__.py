"""ActionFormer: network (network.py), targets and losses (targets.py), the method and its batches (method.py)."""

from pointtal.methods.actionformer.method import ActionFormer, Options

__all__ = ["ActionFormer", "Options"]
