"""The executor: the policy's decision on each proposal, approvals, at-most-once execution,
verification and anti-flapping."""

from .executor import Executor, Progress

__all__ = ["Executor", "Progress"]
