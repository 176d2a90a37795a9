import json

import numpy as np
from PIL import Image

from scratchlab.cli import main
from scratchlab.vis.show import show_dataset


def test_ground_truth_is_drawn_inside_each_box(synth_data, tmp_path):
    lines = []
    written = show_dataset(
        synth_data["train_json"], synth_data["train_images"], tmp_path, n=3, on_image=lines.append
    )
    assert len(written) == len(lines) == 3
    data = json.loads(open(synth_data["train_json"]).read())
    names = {c["id"]: c["name"] for c in data["categories"]}
    for path, line in zip(written, lines, strict=True):
        image = next(i for i in data["images"] if i["file_name"].endswith(path.name))
        src = np.asarray(Image.open(f"{synth_data['train_images']}/{image['file_name']}").convert("RGB"))
        drawn = np.asarray(Image.open(path))
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        for a in anns:
            x, y, w, h = (int(round(v)) for v in a["bbox"])
            region = (slice(y, y + h + 1), slice(x, x + w + 1))
            assert (drawn[region] != src[region]).any()
            assert names[a["category_id"]] in line


def test_show_command(synth_data, tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "show",
                synth_data["val_json"],
                "--images",
                synth_data["val_images"],
                "--out",
                str(tmp_path),
                "-n",
                "2",
            ]
        )
        == 0
    )
    assert len(list(tmp_path.glob("*.png"))) == 2 and "drawn" in capsys.readouterr().out
