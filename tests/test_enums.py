import subprocess
import sys

import pytest
from torch import nn

from scratchlab.config import ConfigError, load_config
from scratchlab.enums import NORMS
from scratchlab.models.norm import norm_factory
from tests.conftest import MINI, ROOT


@pytest.mark.parametrize("name", NORMS)
def test_every_norm_the_config_accepts_builds_a_layer(name):
    cfg = load_config(MINI, [f"model.norm={name}", f"model.fpn.norm={name}"])
    assert cfg.model.norm == name == cfg.model.fpn.norm
    assert isinstance(norm_factory(name, gn_groups=2)(4), nn.Module)


def test_a_norm_outside_the_enumeration_is_refused_by_config_and_models_alike():
    with pytest.raises(ConfigError, match="model.norm"):
        load_config(MINI, ["model.norm=LN"])
    with pytest.raises(ValueError, match=", ".join(NORMS)):
        norm_factory("LN")


def test_the_enumerations_load_without_torch_or_the_rest_of_the_package():
    code = (
        "import sys, scratchlab.enums, scratchlab.config; "
        "heavy = [m for m in sys.modules if m == 'torch' or m.startswith(('scratchlab.models', 'scratchlab.engine'))]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
