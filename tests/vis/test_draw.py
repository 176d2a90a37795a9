import torch

from scratchlab.vis.draw import count_phrase, draw_instances, unique_path


def test_masks_and_boxes_are_drawn_only_where_instances_are():
    image = torch.full((3, 40, 50), 100, dtype=torch.uint8)
    masks = torch.zeros(1, 40, 50, dtype=torch.bool)
    masks[0, 20:30, 20:30] = True
    drawn = draw_instances(image, torch.tensor([[18.0, 18.0, 32.0, 32.0]]), [1], ["a"], masks)
    changed = (drawn != image).any(0)
    assert changed[25, 25] and changed[18, 25]  # mask inside, box outline
    assert not changed[35:, :].any() and not changed[:, 40:].any()


def test_no_instances_leaves_the_image_as_is():
    image = torch.rand(3, 8, 8)
    assert torch.equal(
        draw_instances(image, torch.zeros(0, 4), [], []), (image * 255).round().to(torch.uint8)
    )


def test_helpers(tmp_path):
    assert count_phrase(["dog", "cat", "dog"]) == "2 dog, 1 cat"
    taken: set[str] = set()
    assert [unique_path(tmp_path, "a.jpg", taken).name for _ in range(3)] == ["a.jpg", "a_1.jpg", "a_2.jpg"]


def test_keypoints_are_drawn_where_they_are():
    image = torch.full((3, 40, 50), 100, dtype=torch.uint8)
    keypoints = torch.tensor([[[5.0, 35.0, 1.0], [45.0, 35.0, 1.0]]])  # outside the box
    drawn = draw_instances(image, torch.tensor([[18.0, 5.0, 32.0, 20.0]]), [1], ["a"], keypoints=keypoints)
    changed = (drawn != image).any(0)
    assert changed[35, 5] and changed[35, 45] and not changed[35, 25]


def _caption_height(side: int) -> int:
    """Rows of the filled caption under a box's top edge, in a column inside the caption."""
    image = torch.zeros(3, side, side, dtype=torch.uint8)
    drawn = draw_instances(image, torch.tensor([[0.0, 0.0, side * 0.9, side * 0.9]]), [1], ["raccoon 0.97"])
    column = (drawn[:, :, side // 20] != 0).any(0)
    return int(column[: side // 2].nonzero().max()) + 1


def test_captions_grow_with_the_image():
    # a phone photo gets a caption readable when the picture is viewed whole, not PIL's fixed ~10 px font
    assert _caption_height(3000) > 3 * _caption_height(300)
