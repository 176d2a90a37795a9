"""Names that the config schema and the packages under it both enumerate.

Kept free of torch and of the rest of the package, so :mod:`scratchlab.config` can type its keys with them
and :mod:`scratchlab.models` can build from them without either importing the other.
"""

from __future__ import annotations

__all__ = ["NORMS"]

# model.norm and the per-part norms (models.norm.norm_factory builds each).
NORMS = ("GN", "SyncBN", "BN", "FrozenBN")
