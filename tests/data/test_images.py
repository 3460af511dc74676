"""Image datasets: the embedded photographs and image folders written by the tests."""
import numpy as np
import pytest
import torch
from PIL import Image

from dac_diveq.data.images import (EMBEDDED_NAMES, EmbeddedImages, ImageDataError, ImageFolder,
                                   build_image_dataset, embedded_images, split_items)


def test_split_items_deterministic_and_disjoint():
    items = [f"img{i:02d}" for i in range(10)]
    train, val = split_items(items[::-1], seed=3)
    assert (train, val) == split_items(items, seed=3)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == items
    assert split_items(items, seed=4) != (train, val)
    assert split_items(["a", "b"]) in ((["a"], ["b"]), (["b"], ["a"]))


def test_embedded_images_are_rgb_uint8():
    photos = embedded_images()
    assert tuple(photos) == EMBEDDED_NAMES
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in photos.values())


def test_embedded_dataset_deterministic_and_split_by_photograph():
    train, val = EmbeddedImages("train", 32, n_items=8), EmbeddedImages("val", 32, n_items=4)
    assert not set(train.names) & set(val.names) and len(val.names) == 2
    assert sorted(train.names + val.names) == sorted(EMBEDDED_NAMES)
    again = EmbeddedImages("train", 32, n_items=8)
    for i in (0, 5, 1000):  # any index, also beyond len (resumed training)
        x = train[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert torch.equal(x, again[i])
    assert not torch.equal(train[0], train[1])
    assert len(train) == 8 and len(val) == 4 and torch.equal(val[1], EmbeddedImages("val", 32, n_items=4)[1])
    with pytest.raises(ImageDataError, match="split"):
        EmbeddedImages("test", 32)


def _write(path, size=(40, 30), mode="RGB", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """10 images in nested class folders, PNG and JPEG, landscape and portrait."""
    root = tmp_path / "images"
    for i in range(10):
        ext = ".png" if i % 2 else ".JPG"
        _write(root / f"class{i % 3}" / "sub" / f"img{i}{ext}", size=(40, 30) if i % 3 else (24, 36), seed=i)
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_split_and_items(folder):
    train, val = ImageFolder(folder, "train", 16, validate=True), ImageFolder(folder, "val", 16)
    assert len(train.files) == 8 and len(val.files) == 2 and not set(train.files) & set(val.files)
    assert train.files == ImageFolder(folder, "train", 16).files
    for i in (0, 7, 8, 123):  # beyond one epoch too
        x = train[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert torch.equal(x, ImageFolder(folder, "train", 16)[i])
    # One epoch visits every training file once.
    assert sorted(str(train._file(i).relative_to(folder).as_posix()) for i in range(8)) == train.files
    assert torch.equal(val[1], val[1]) and len(ImageFolder(folder, "val", 16, n_items=64)) == 2
    assert build_image_dataset(str(folder), "train", 16, n_items=5).__len__() == 5


@pytest.mark.parametrize("case, pattern", [
    ("corrupt", "cannot read image"),
    ("truncated", "cannot read image"),
    ("grayscale", "grayscale"),
    ("rgba", "4 channels"),
    ("small", "smaller than image_size 16"),
])
def test_image_folder_bad_files(tmp_path, case, pattern):
    root = tmp_path / "images"
    for i in range(4):
        _write(root / f"ok{i}.png", seed=i)
    bad = root / "nested" / f"bad_{case}.png"
    if case == "corrupt":
        bad.parent.mkdir(parents=True)
        bad.write_bytes(b"\x89PNG definitely not an image")
    elif case == "truncated":
        data = _write(bad, size=(64, 64)).read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    else:
        _write(bad, size=(8, 8) if case == "small" else (40, 30),
               mode={"grayscale": "L", "rgba": "RGBA"}.get(case, "RGB"))
    # Lazily, when the item is read ...
    splits = [split for split in ("train", "val") if "nested/" + bad.name in ImageFolder(root, split, 16).files]
    assert len(splits) == 1
    for split in splits:
        dataset = ImageFolder(root, split, 16)
        index = [i for i in range(len(dataset.files)) if dataset._file(i) == bad][0]
        with pytest.raises(ImageDataError, match=pattern) as error:
            dataset[index]
        assert str(bad) in str(error.value)
    # ... and up front with a check of every file (truncated data needs a full decode).
    with pytest.raises(ImageDataError, match=pattern) as error:
        for split in ("train", "val"):
            ImageFolder(root, split, 16).check(decode=case == "truncated")
    assert str(bad) in str(error.value) and "\n" not in str(error.value)


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(ImageDataError, match="does not exist") as error:
        ImageFolder(tmp_path / "absent", "train", 16)
    assert str(tmp_path / "absent") in str(error.value)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ImageDataError, match="no images") as error:
        build_image_dataset(str(tmp_path / "empty"), "train", 16)
    assert str(tmp_path / "empty") in str(error.value)
    _write(tmp_path / "one" / "a.png")
    with pytest.raises(ImageDataError, match="only 1 image"):
        ImageFolder(tmp_path / "one", "val", 16)
