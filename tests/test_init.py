import os
import subprocess
import sys
from pathlib import Path

import scratchlab


def test_notebook_api_names_the_real_functions_with_examples():
    from scratchlab import evaluate, load_config, predict, train
    from scratchlab.config import load_config as real_load_config
    from scratchlab.engine import evaluate_checkpoint
    from scratchlab.engine import train as real_train
    from scratchlab.engine.predict import predict as real_predict

    assert (load_config, train, evaluate, predict) == (
        real_load_config,
        real_train,
        evaluate_checkpoint,
        real_predict,
    )
    for fn in (load_config, train, evaluate, predict):
        assert "Example::" in fn.__doc__, fn.__name__
    assert set(scratchlab.__all__) == {"load_config", "train", "evaluate", "predict"}


def test_import_stays_light():
    code = "import sys, scratchlab; assert 'torch' not in sys.modules, 'import scratchlab pulled in torch'"
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}
    )
