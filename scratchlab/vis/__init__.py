"""Pictures: detections and ground truth drawn on images (``draw``), training curves (``plots``).

``draw`` and ``plots`` depend on no other part of scratchlab, so ``data``-side and ``engine``-side
commands can share them."""
