"""Initial weights (``model.init``): one loader per source, a common checked load, and provenance.

Sources: torchvision weights enums and files (:mod:`.from_torchvision`), timm ResNets (:mod:`.from_timm`),
Detectron's Caffe2 pickles (:mod:`.from_caffe2`), Detectron2 checkpoints (:mod:`.from_detectron2`) and
scratchlab's own ``backbone.pth`` / ``model_final.pth``. :func:`load_init` picks the loader,
:func:`load_state` checks and loads, :func:`describe_init` says where the weights came from.
"""

from .init import load_init
from .load import load_state
from .provenance import describe_init

__all__ = ["describe_init", "load_init", "load_state"]
