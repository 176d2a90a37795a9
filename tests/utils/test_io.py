import json
import math

import pytest

from scratchlab.utils.io import write_json, write_text


def test_write_json_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "m.json"
    assert write_json(path, {"a": 1}) == path
    write_json(path, {"b": [1, 2]}, indent=2)
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    path = write_text(tmp_path / "m.json", '{"kept": true}')
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        write_json(path, {"x": math.nan})
    assert json.loads(path.read_text()) == {"kept": True}
