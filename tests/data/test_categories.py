import pytest

from scratchlab.data.categories import CategoryMismatch, compare_categories, used_category_ids

MODEL = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 5, "name": "fox"}]


def _compare(val, used):
    return compare_categories(MODEL, val, used, "train.json", "val.json")


def test_order_and_unused_extra_entries_agree():
    val = [
        {"id": 5, "name": "fox"},
        {"id": 0, "name": "animals"},
        {"id": 2, "name": "dog"},
        {"id": 1, "name": "cat"},
    ]
    assert _compare(val, {1: 3, 2: 1, 5: 2}) == []


def test_the_models_categories_without_annotations_are_returned():
    val = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]  # an export of the categories in the split
    assert [c["id"] for c in _compare(val, {1: 4, 2: 1})] == [5]


def test_a_renamed_id_is_refused_naming_both_files_the_id_and_both_names():
    val = [{"id": 1, "name": "cat"}, {"id": 2, "name": "wolf"}]
    with pytest.raises(CategoryMismatch) as err:
        _compare(val, {1: 1})
    message = str(err.value)
    assert "val.json" in message and "train.json" in message
    assert "id 2 is 'wolf' there, 'dog' in the model" in message


def test_an_annotated_unknown_category_is_refused_but_an_unannotated_one_is_not():
    val = [*MODEL, {"id": 7, "name": "zebra"}]
    assert _compare(val, {1: 1, 2: 1, 5: 1}) == []
    with pytest.raises(CategoryMismatch, match=r"id 7 'zebra' \(2 annotation\(s\)\).*AP could only be 0"):
        _compare(val, {1: 1, 7: 2})


def test_crowd_regions_do_not_count_as_use():
    anns = [{"category_id": 7, "iscrowd": 1}, {"category_id": 1}, {"category_id": 1, "iscrowd": 0}]
    assert used_category_ids(anns) == {1: 2}
