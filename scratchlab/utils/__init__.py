"""Helpers every layer may use (``data``, ``models``, ``evaluation``, ``engine``, ``pretrain``, ``study``):
process groups (:mod:`.dist`), atomic file writes (:mod:`.io`), logging and device choice
(:mod:`.runtime`). Nothing here imports the rest of the package."""
