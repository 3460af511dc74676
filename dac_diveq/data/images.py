"""Image datasets for the image track: scikit-image's bundled photographs, or any image folder.

Items are float tensors ``(3, S, S)`` in [0, 1]. Item ``i`` is a deterministic function of
``(seed, i)`` for any ``i >= 0`` (also beyond ``len``), so training resumed with
:class:`~dac_diveq.training.sampler.StepSampler` replays the data an uninterrupted run would see.
Train/val splits are by photograph/file, so validation images are never seen in training.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError
from ..training.userfiles import file_kind

T = TypeVar("T")

# scikit-image's bundled colour photographs (shipped in the wheel, so no download). ``cat``
# is left out because it is the same picture as ``chelsea``; ``logo`` because it is an RGBA
# graphic on a transparent background, not a photograph.
EMBEDDED_NAMES = ("astronaut", "chelsea", "coffee", "colorwheel", "hubble_deep_field",
                  "immunohistochemistry", "retina", "rocket")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
SPLITS = ("train", "val")


class ImageDataError(DataError):
    """An image source is unusable (missing folder, no/corrupt/grayscale/too small images).

    The message is one line naming the offending path.
    """


def split_items(items: Sequence[T], train_fraction: float = 0.8, seed: int = 0) -> tuple[list[T], list[T]]:
    """Deterministic train/val split of the sorted items.

    Args:
        items: sortable items (names, paths); their order does not matter.
        train_fraction: share of items for training.
        seed: seed of the shuffle.

    Returns:
        ``(train, val)``, each sorted; ``val`` has at least one item (and ``train`` too) when
        there are two or more items; a single item goes to ``train``.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction}")
    ordered = sorted(items)
    n = len(ordered)
    n_val = min(max(1, round(n * (1 - train_fraction))), n - 1) if n >= 2 else 0
    order = np.random.default_rng(seed).permutation(n)
    val = sorted(ordered[k] for k in order[:n_val])
    train = sorted(ordered[k] for k in order[n_val:])
    return train, val


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def _resize_short_side(image: Image.Image, short: int) -> Image.Image:
    """Bicubic resize to a short side of ``short`` px (PIL antialiases when shrinking)."""
    w, h = image.size
    factor = short / min(w, h)
    size = (max(short, round(w * factor)), max(short, round(h * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


def _crop(array: np.ndarray, size: int, rng: np.random.Generator | None, flip: bool) -> torch.Tensor:
    """A ``size`` crop of an HWC uint8 array (random with ``rng``, else centred) as a CHW float tensor."""
    h, w = array.shape[:2]
    if rng is None:
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top, left = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    crop = array[top:top + size, left:left + size]
    if flip:
        crop = crop[:, ::-1]
    return torch.from_numpy(np.array(crop)).permute(2, 0, 1).float() / 255.0  # copy: PIL arrays are read-only


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ImageDataError(f"split must be one of {SPLITS}, got {split!r}")


# ----------------------------------------------------------------------------- embedded photographs


def embedded_images() -> dict[str, np.ndarray]:
    """scikit-image's bundled colour photographs, offline.

    Returns:
        ``{name: uint8 array (H, W, 3)}`` for the names in :data:`EMBEDDED_NAMES`.
    """
    import skimage.data

    return {name: np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in EMBEDDED_NAMES}


class EmbeddedImages(torch.utils.data.Dataset):
    """Crops of scikit-image's photographs, 80/20 split by photograph (6 train, 2 val).

    Every photograph is first resized so that its short side is ``scale * image_size``; the
    default ``scale=2`` makes a crop cover about half of the photograph's short side, enough
    to hold recognisable structure (a face, a cup) at any ``image_size``.

    Args:
        split: ``"train"`` (random photograph, crop and horizontal flip per item) or ``"val"``
            (photographs in turn, a fixed crop each, no flip).
        image_size: side ``S`` of the square crops.
        n_items: crops per epoch (``len``); any index is valid.
        scale: short side of the resized photographs in units of ``image_size`` (>= 1).
        seed: seed of the split and of every item's RNG (item ``i`` uses ``(seed, i)``).
    """

    def __init__(self, split: str = "train", image_size: int = 64, n_items: int | None = None,
                 scale: float = 2.0, seed: int = 0) -> None:
        _check_split(split)
        if image_size < 1:
            raise ImageDataError(f"image_size must be positive, got {image_size}")
        if scale < 1.0:
            raise ImageDataError(f"scale must be >= 1 (crops cannot exceed the photograph), got {scale}")
        photos = embedded_images()
        train, val = split_items(list(photos), seed=seed)
        self.names = train if split == "train" else val
        self.split, self.image_size, self.seed = split, image_size, seed
        self.n_items = n_items if n_items is not None else (1024 if split == "train" else 64)
        short = max(image_size, round(scale * image_size))
        self.photos = [np.asarray(_resize_short_side(Image.fromarray(photos[name]), short)) for name in self.names]

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = _rng(self.seed, index)
        if self.split == "train":
            photo = self.photos[int(rng.integers(len(self.photos)))]
            return _crop(photo, self.image_size, rng, flip=bool(rng.random() < 0.5))
        return _crop(self.photos[index % len(self.photos)], self.image_size, rng, flip=False)


# ----------------------------------------------------------------------------- image folders


def _list_images(root: Path) -> list[str]:
    """Image files below ``root`` (recursive, case-insensitive extensions) as sorted relative paths."""
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def _open_rgb(path: Path, image_size: int, decode: bool = True) -> Image.Image:
    """Open ``path`` and check it is an RGB image of at least ``image_size`` px per side.

    Palette and YCbCr images are converted to RGB (they are colour images); grayscale and
    images with another channel count (RGBA, CMYK) are refused rather than guessed at.
    """
    kind = file_kind(path)
    if kind != "file":  # a FIFO named *.png would block the reader forever
        raise ImageDataError(f"cannot read image {path}: not a regular file ({kind})")
    try:
        image = Image.open(path)
        if decode:
            image.load()  # reads the pixel data: catches truncated/corrupt files, not only bad headers
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDataError(f"cannot read image {path}: {error}") from error
    try:
        if image.mode in GRAYSCALE_MODES:
            raise ImageDataError(f"image {path} is grayscale (mode {image.mode}); images must be RGB")
        if image.mode not in ("RGB", "P", "YCbCr"):
            raise ImageDataError(f"image {path} has {len(image.getbands())} channels (mode {image.mode}); "
                                 f"images must have 3 (RGB)")
        w, h = image.size
        if min(w, h) < image_size:
            raise ImageDataError(f"image {path} is {w}x{h} px, smaller than image_size {image_size} (odd size; "
                                 f"upsampling would blur it): remove it or lower image_size")
    except ImageDataError:
        image.close()
        raise
    return image.convert("RGB") if decode and image.mode != "RGB" else image


class ImageFolder(torch.utils.data.Dataset):
    """Square crops of the images in a folder (flat, or nested class folders, searched recursively).

    Layouts such as exported CelebA-HQ, FFHQ, AFHQ or LSUN work as is. The sorted file list is
    split 80/20 with a fixed seed. Each image is resized (bicubic) so its short side is
    ``image_size``, then cropped square: train takes a random crop along the long side plus a
    random horizontal flip, val the centre crop (so square datasets are used whole). Images
    smaller than ``image_size`` are an error, not upsampled.

    Errors are found lazily when an item is read; :meth:`check` (or ``validate=True``) scans
    every file up front for a fast fail.

    Args:
        root: the folder.
        split: ``"train"`` or ``"val"``.
        image_size: side ``S`` of the crops.
        n_items: ``len`` of the dataset; ``None`` is the number of files of the split. Val
            never repeats files: it has ``min(n_items, files)`` items, the first files in order.
        seed: seed of the split and of every item's RNG (item ``i`` uses ``(seed, i)``).
        validate: run :meth:`check` (headers only) in the constructor.

    Raises:
        ImageDataError: missing folder, no images, too few images for a val split, and (when
            validating or reading) unreadable, grayscale, wrongly shaped or too small images.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = 64,
                 n_items: int | None = None, seed: int = 0, validate: bool = False) -> None:
        _check_split(split)
        self.root = Path(root)
        if not self.root.is_dir():
            raise ImageDataError(f"image folder {self.root} does not exist")
        files = _list_images(self.root)
        if not files:
            raise ImageDataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.root}")
        train, val = split_items(files, seed=seed)
        self.files = train if split == "train" else val
        if not self.files:
            raise ImageDataError(f"image folder {self.root} has only {len(files)} image; a train/val split needs 2")
        self.split, self.image_size, self.seed = split, image_size, seed
        n = len(self.files)
        self.n_items = n if n_items is None else (n_items if split == "train" else min(n_items, n))
        self._epoch_order: tuple[int, np.ndarray] | None = None
        if validate:
            self.check()

    def __len__(self) -> int:
        return self.n_items

    def check(self, decode: bool = False) -> None:
        """Open every file of the split and check mode and size.

        Args:
            decode: also decode the pixel data (finds truncated files too, but reads everything).

        Raises:
            ImageDataError: for the first bad file, naming it.
        """
        for name in self.files:
            _open_rgb(self.root / name, self.image_size, decode=decode).close()

    def _file(self, index: int) -> Path:
        """Train: each epoch visits every file once in a seeded random order (a sequential sampler
        would otherwise see class folders one after the other); val: files in order."""
        n = len(self.files)
        if self.split == "val":
            return self.root / self.files[index % n]
        epoch = index // n
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            self._epoch_order = (epoch, np.random.default_rng([self.seed, epoch, n]).permutation(n))
        return self.root / self.files[int(self._epoch_order[1][index % n])]

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self._file(index)
        try:
            image = _resize_short_side(_open_rgb(path, self.image_size), self.image_size)
            array = np.asarray(image)
        except OSError as error:  # truncated data can surface only while resizing
            raise ImageDataError(f"cannot read image {path}: {error}") from error
        if self.split == "val":
            return _crop(array, self.image_size, None, flip=False)
        rng = _rng(self.seed, index)
        return _crop(array, self.image_size, rng, flip=bool(rng.random() < 0.5))


def build_image_dataset(source: str, split: str, image_size: int, n_items: int | None = None, seed: int = 0,
                        validate: bool = True) -> torch.utils.data.Dataset:
    """The image dataset named by ``source``.

    Args:
        source: ``"embedded"`` (:class:`EmbeddedImages`) or a folder path (:class:`ImageFolder`).
        split: ``"train"`` or ``"val"``.
        image_size: side of the square items.
        n_items: items per epoch (see the two classes for the defaults).
        seed: split and item seed.
        validate: for folders, check every file's header now (fast fail before training).

    Returns:
        A dataset of ``(3, image_size, image_size)`` float tensors in [0, 1].
    """
    if source == "embedded":
        return EmbeddedImages(split, image_size, n_items=n_items, seed=seed)
    return ImageFolder(source, split, image_size, n_items=n_items, seed=seed, validate=validate)
