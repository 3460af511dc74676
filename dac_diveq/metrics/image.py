"""Image-quality metrics: PSNR, SSIM, LPIPS (VGG16) and FID (torch-fidelity's InceptionV3).

Image conventions: torch tensors are ``(B, 3, H, W)`` or ``(3, H, W)`` floats in [0, 1]; numpy
arrays are ``(B, H, W, 3)`` or ``(H, W, 3)``, uint8 (0-255) or float (in [0, 1]).

Pretrained weights are never downloaded here. LPIPS needs torchvision's ImageNet VGG16 file
``vgg16-397923af.pth`` and FID needs torch-fidelity's InceptionV3 file
``weights-inception-2015-12-05-6726825d.pth``; each is looked up as

1. the explicit path argument,
2. the environment variable (``DAC_DIVEQ_VGG16`` / ``DAC_DIVEQ_INCEPTION``),
3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<file name>`` (honours ``$TORCH_HOME``).

A path given in 1 or 2 that does not exist is an error (no silent fall-back to another file).
:func:`make_random_vgg16_weights` / :func:`make_random_inception_weights` write randomly
initialised files of the same format for smoke runs and tests.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import errors

VGG16_ENV = "DAC_DIVEQ_VGG16"
INCEPTION_ENV = "DAC_DIVEQ_INCEPTION"


class WeightsNotFoundError(errors.WeightsNotFoundError):
    """No weights file for LPIPS or FID could be found; the message says where it looked."""


class WeightsFormatError(errors.WeightsError):
    """A weights file exists but does not hold the expected network's state dict."""


# ----------------------------------------------------------------------------- image conversion


def to_numpy_hwc(images) -> np.ndarray:
    """Images as a float64 numpy batch ``(B, H, W, 3)`` in [0, 1] (uint8 inputs are divided by 255).

    Args:
        images: a torch tensor ``(B, 3, H, W)`` / ``(3, H, W)``, or a numpy array
            ``(B, H, W, 3)`` / ``(H, W, 3)`` of uint8 or float values.

    Returns:
        The batch as ``(B, H, W, 3)`` float64; a single image becomes a batch of one.
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu()
        x = x if x.dtype == torch.uint8 else x.double()  # numpy has no bfloat16
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a torch image (B, 3, H, W) or (3, H, W), got shape {tuple(images.shape)}")
        x = x.permute(0, 2, 3, 1).numpy()
    else:
        x = np.asarray(images)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected a numpy image (B, H, W, 3) or (H, W, 3), got shape {np.shape(images)}")
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    return x.astype(np.float64)


def _to_torch_nchw(images) -> torch.Tensor:
    """Images as a float32 torch batch ``(B, 3, H, W)`` in [0, 1]; torch inputs keep their graph."""
    if isinstance(images, torch.Tensor):
        x = images[None] if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a torch image (B, 3, H, W) or (3, H, W), got shape {tuple(images.shape)}")
        return x.float() / 255.0 if x.dtype == torch.uint8 else x
    return torch.from_numpy(to_numpy_hwc(images)).permute(0, 3, 1, 2).float()


def _to_uint8_nchw(images) -> torch.Tensor:
    """Images as a uint8 torch batch ``(B, 3, H, W)``, torch-fidelity's input format."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        x = images[None] if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a torch image (B, 3, H, W) or (3, H, W), got shape {tuple(images.shape)}")
        return x
    x = _to_torch_nchw(images).detach()
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _pairs(ref, est) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_numpy_hwc(ref), to_numpy_hwc(est)
    if a.shape != b.shape:
        raise ValueError(f"reference and estimate differ in shape: {a.shape} vs {b.shape} (as B, H, W, 3)")
    return a, b


def _reduce(values: list[float], per_image: bool) -> float | list[float]:
    return values if per_image else float(np.mean(values))


# ----------------------------------------------------------------------------- PSNR / SSIM


def psnr(ref, est, data_range: float = 1.0, per_image: bool = False) -> float | list[float]:
    """Peak signal-to-noise ratio in dB (``skimage.metrics.peak_signal_noise_ratio``).

    Args:
        ref, est: images in any layout :func:`to_numpy_hwc` accepts (uint8 is scaled to [0, 1]).
        data_range: the value range of the images after conversion (1.0 for [0, 1]).
        per_image: return one value per image instead of the batch mean.

    Returns:
        PSNR; identical images give ``inf`` (and so does a batch mean containing one).
    """
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pairs(ref, est)
    with np.errstate(divide="ignore"):  # MSE 0 -> inf is the intended value, not a warning
        values = [float(peak_signal_noise_ratio(x, y, data_range=data_range)) for x, y in zip(a, b)]
    return _reduce(values, per_image)


# Wang et al. (2004): 11-tap Gaussian window, sigma 1.5, population covariance.
SSIM_SIGMA = 1.5
SSIM_FULL_WINDOW = 11


def ssim(ref, est, data_range: float = 1.0, per_image: bool = False) -> float | list[float]:
    """Structural similarity (``skimage.metrics.structural_similarity``), averaged over RGB.

    Uses the Wang et al. (2004) convention that skimage documents for matching the original:
    Gaussian weights with sigma 1.5, population covariance, an explicit ``data_range``. That
    convention crops an 11-pixel window's border before averaging, so images with a side below
    11 px would be rejected; for them ``win_size`` becomes the largest odd number not above the
    short side. This only shrinks the cropped border (the Gaussian filter is unchanged), so tiny
    images still get local SSIM statistics, averaged over more of the image.

    Args:
        ref, est: images in any layout :func:`to_numpy_hwc` accepts (uint8 is scaled to [0, 1]).
        data_range: the value range of the images after conversion (1.0 for [0, 1]).
        per_image: return one value per image instead of the batch mean.

    Returns:
        SSIM in [-1, 1]; identical images give 1.
    """
    from skimage.metrics import structural_similarity

    a, b = _pairs(ref, est)
    short = min(a.shape[1], a.shape[2])
    win_size = SSIM_FULL_WINDOW if short >= SSIM_FULL_WINDOW else short - (1 - short % 2)
    values = [float(structural_similarity(x, y, data_range=data_range, channel_axis=-1, gaussian_weights=True,
                                          sigma=SSIM_SIGMA, use_sample_covariance=False, win_size=win_size))
              for x, y in zip(a, b)]
    return _reduce(values, per_image)


# ----------------------------------------------------------------------------- weight files


def _vgg16_url() -> str:
    from torchvision.models import VGG16_Weights

    return VGG16_Weights.IMAGENET1K_V1.url


def _inception_url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def _resolve(explicit: str | os.PathLike | None, env: str, url: str, what: str) -> Path:
    """The weights file for ``what``: explicit path, else ``$env``, else the torch hub cache."""
    name = url.rsplit("/", 1)[-1]
    if explicit is not None:
        if Path(explicit).is_file():
            return Path(explicit)
        raise WeightsNotFoundError(f"{what} weights file {str(explicit)!r} (given explicitly) does not exist")
    if os.environ.get(env):
        if Path(os.environ[env]).is_file():
            return Path(os.environ[env])
        raise WeightsNotFoundError(f"{what} weights file {os.environ[env]!r} (from ${env}) does not exist")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return cached
    raise WeightsNotFoundError(
        f"{what} weights not found: no explicit path, ${env} unset, no {cached}; download {url} on a machine "
        f"with internet and pass its path, set ${env} to it, or copy it to {cached.parent}/")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source(path: Path, url: str) -> str:
    """``"<path> (sha256 <12 hex>, official|NOT the official ...)"``, for reports.

    torchvision and torch-fidelity name their files ``<name>-<sha256 prefix>.pth``, so the hash
    tells whether a file is the published one (random smoke-run weights are not).
    """
    digest = _sha256(path)
    prefix = url.rsplit("-", 1)[-1].split(".")[0]
    verdict = "official" if digest.startswith(prefix) else f"NOT the official {url.rsplit('/', 1)[-1]}"
    return f"{path} (sha256 {digest[:12]}, {verdict})"


def inception_weights_source(inception_weights: str | os.PathLike | None = None) -> str:
    """The source string of the InceptionV3 file :func:`fid` would use (path, sha256, verdict).

    Raises:
        WeightsNotFoundError: no file found.
    """
    url = _inception_url()
    return _source(_resolve(inception_weights, INCEPTION_ENV, url, "InceptionV3 (FID)"), url)


# ----------------------------------------------------------------------------- LPIPS (VGG16)


def make_random_vgg16_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a randomly initialised torchvision VGG16 state dict (keys ``features.N.weight``).

    For tests and smoke runs only: LPIPS computed with these weights has meaningless absolute
    values. Only the convolutional ``features`` are saved (the classifier is unused by LPIPS and
    would add 470 MB); :func:`load_lpips` reads this file like the official one.

    Args:
        path: where to write the ``.pth`` file.
        seed: torch seed of the initialisation.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from torchvision.models.vgg import cfgs, make_layers

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        features = make_layers(cfgs["D"])  # VGG16's convolutional trunk, torchvision's layout
        for module in features.modules():  # torchvision's VGG initialisation
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                torch.nn.init.zeros_(module.bias)
    path = Path(path)
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, path)
    return path


@functools.cache
def _frozen_lpips_class():
    """``lpips.LPIPS`` subclass that stays in eval mode (imported lazily: lpips is slow to import)."""
    import lpips

    class FrozenLPIPS(lpips.LPIPS):
        """``.train()`` inside a training loop must not switch on the Dropout of the linear
        heads: LPIPS is a fixed perceptual loss, never trained here."""

        weights_source: str = ""

        def train(self, mode: bool = True) -> "FrozenLPIPS":
            return super().train(False)

    return FrozenLPIPS


def _load_vgg16_backbone(net: torch.nn.Module, path: Path) -> None:
    """Copy ``features.N.*`` tensors of a torchvision VGG16 file into lpips' slices.

    lpips splits ``vgg16().features`` into ``slice1..5`` keeping each layer's index as its
    name, so ``features.N.weight`` maps to ``sliceK.N.weight``.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- any unreadable file gets the same one-line error
        raise WeightsFormatError(f"cannot read {path} as a PyTorch state dict ({type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''})") from error
    if not isinstance(state, dict):
        raise WeightsFormatError(f"{path} holds a {type(state).__name__}, not a VGG16 state dict")
    targets = {}
    for slice_name, block in net.named_children():
        for key in block.state_dict():
            targets[f"features.{key}"] = f"{slice_name}.{key}"
    missing = [key for key in targets if key not in state]
    if missing:
        found = ", ".join(list(state)[:3]) or "nothing"
        raise WeightsFormatError(f"{path} is not a torchvision VGG16 state dict: {len(missing)} of {len(targets)} "
                                 f"backbone keys missing (e.g. {missing[0]}); it holds {found}, ...")
    current = net.state_dict()
    for key, target in targets.items():
        if state[key].shape != current[target].shape:
            raise WeightsFormatError(f"{path} is not a torchvision VGG16 state dict: {key} has shape "
                                     f"{tuple(state[key].shape)}, VGG16 needs {tuple(current[target].shape)}")
    net.load_state_dict({target: state[key] for key, target in targets.items()})


def load_lpips(vgg16_weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """LPIPS v0.1 with a VGG16 trunk, its ImageNet weights read from a local file.

    The linear heads (calibrated on human judgements) ship inside the lpips wheel; the trunk
    is built randomly (``pnet_rand=True``, so nothing is downloaded) and then overwritten with
    the torchvision VGG16 file found as described in the module docstring.

    Args:
        vgg16_weights: path of ``vgg16-397923af.pth`` (or a file of the same format); ``None``
            looks at ``$DAC_DIVEQ_VGG16`` and then the torch hub cache.
        device: where to put the model.

    Returns:
        The model, in eval mode, parameters frozen (it stays differentiable w.r.t. its inputs),
        with ``weights_source`` naming the VGG16 file, its hash and the lpips heads.

    Raises:
        WeightsNotFoundError: no weights file found.
        WeightsFormatError: the file is not a VGG16 state dict.
    """
    url = _vgg16_url()
    path = _resolve(vgg16_weights, VGG16_ENV, url, "VGG16 (LPIPS)")
    with warnings.catch_warnings():
        # lpips still calls torchvision's deprecated ``vgg16(pretrained=False)``; harmless here.
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = _frozen_lpips_class()(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    _load_vgg16_backbone(model.net, path)
    model.requires_grad_(False)
    model.eval()
    model.weights_source = f"VGG16 {_source(path, url)}; lpips {_lpips_version()} v0.1 vgg linear heads"
    return model.to(device)


def _lpips_version() -> str:
    from importlib.metadata import version

    return version("lpips")


def lpips_distance(model: torch.nn.Module, ref, est) -> torch.Tensor:
    """LPIPS distance per image (0 for identical images, larger is more different).

    Args:
        model: from :func:`load_lpips`.
        ref, est: images in [0, 1], torch ``(B, 3, H, W)`` / ``(3, H, W)`` (gradients flow
            through) or numpy HWC; at least 16 px per side (VGG16 pools four times).

    Returns:
        Tensor ``(B,)`` on the model's device.
    """
    device = next(model.parameters()).device
    a, b = _to_torch_nchw(ref).to(device), _to_torch_nchw(est).to(device)
    if a.shape != b.shape:
        raise ValueError(f"reference and estimate differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return model(a * 2 - 1, b * 2 - 1).reshape(-1)  # lpips expects [-1, 1]


# ----------------------------------------------------------------------------- FID (InceptionV3)


@functools.cache
def _inception_class():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInceptionV3(FeatureExtractorInceptionV3):
        """torch-fidelity's extractor keeping its random initialisation: its constructor always
        loads a state dict (downloading one for a ``None`` path), so an empty one is skipped."""

        def load_state_dict(self, state_dict, *args, **kwargs):
            if state_dict:
                return super().load_state_dict(state_dict, *args, **kwargs)
            return None

    return FeatureExtractorInceptionV3, RandomInceptionV3


FID_FEATURE = "2048"  # torch-fidelity's (and the FID paper's) pool-3 features


def make_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a randomly initialised state dict for torch-fidelity's InceptionV3 extractor.

    For tests and smoke runs only: FID computed with these weights has meaningless absolute
    values (it still is 0 for identical sets and grows with the difference). Convolutions use
    He-normal initialisation so activations neither vanish nor explode through the network
    (its BatchNorms run in eval mode with unit statistics and cannot rescale them).

    Args:
        path: where to write the ``.pth`` file.
        seed: torch seed of the initialisation.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    _, random_class = _inception_class()
    path = Path(path)
    torch.save({}, path)  # the constructor insists on reading a file; empty means "keep random"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = random_class("inception-v3-compat", [FID_FEATURE], feature_extractor_weights_path=str(path))
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    torch.save(model.state_dict(), path)
    return path


def load_inception(inception_weights: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> torch.nn.Module:
    """torch-fidelity's InceptionV3 feature extractor (2048-d pool features), from a local file.

    torch-fidelity reads the file with ``torch.load(..., weights_only=False)``, which would run
    code a crafted file carries: the file is first read here with ``weights_only=True`` and
    refused unless it holds tensors and plain data only.

    Args:
        inception_weights: path of ``weights-inception-2015-12-05-6726825d.pth`` (or a file of
            the same format); ``None`` looks at ``$DAC_DIVEQ_INCEPTION``, then the torch hub cache.
        device: where to put the model.

    Returns:
        The extractor (eval mode, frozen) with ``weights_source`` naming the file and its hash.

    Raises:
        WeightsNotFoundError: no weights file found.
        WeightsFormatError: the file is not torch-fidelity InceptionV3 weights.
    """
    url = _inception_url()
    path = _resolve(inception_weights, INCEPTION_ENV, url, "InceptionV3 (FID)")
    official_class, _ = _inception_class()
    _check_plain_state(path)
    try:
        model = official_class("inception-v3-compat", [FID_FEATURE], feature_extractor_weights_path=str(path))
    except Exception as error:  # noqa: BLE001 -- unreadable file or key mismatch: one clear line
        detail = " ".join(str(error).split())[:240]
        raise WeightsFormatError(f"{path} is not torch-fidelity InceptionV3 weights (expected the format of "
                                 f"{url.rsplit('/', 1)[-1]}): {type(error).__name__}: {detail}") from error
    model.weights_source = f"InceptionV3 {_source(path, url)}; torch-fidelity feature '{FID_FEATURE}'"
    return model.to(device)


def _check_plain_state(path: Path) -> None:
    """Refuse a weights file ``torch.load(weights_only=True)`` cannot read (a pickle that would
    import or run code, or not a PyTorch file at all) before a third-party loader sees it."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- every refusal is the same one-line error
        detail = " ".join(str(error).split())
        found = re.search(r"GLOBAL ([\w.]+)", detail)
        reason = f"it would import {found.group(1)}" if found else detail.split(". ")[0][:160]
        raise WeightsFormatError(f"refusing to load {path}: not a file of tensors and plain data ({reason})") from None


@torch.no_grad()
def inception_features(model: torch.nn.Module, images, batch_size: int = 32) -> torch.Tensor:
    """2048-d InceptionV3 features of images (resized to 299 px by torch-fidelity).

    Args:
        model: from :func:`load_inception`.
        images: uint8 ``(N, 3, H, W)`` tensors, float tensors in [0, 1], or numpy HWC images.
        batch_size: images per forward pass.

    Returns:
        float64 CPU tensor ``(N, 2048)``.
    """
    x = _to_uint8_nchw(images)
    device = next(model.parameters()).device
    chunks = [model(x[i:i + batch_size].to(device))[0].double().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(chunks)


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})``. With fewer samples than
    dimensions (typical of evaluation sets of a few hundred images against 2048 features) the
    last trace is computed exactly in sample space: with ``S = A^T A`` for centred, scaled
    samples ``A``, the eigenvalues of ``S_a S_b`` are the squared singular values of
    ``A_a A_b^T``, so the trace is that matrix's nuclear norm; this avoids a 2048x2048
    eigendecomposition. Otherwise torch-fidelity's own statistics code is used.

    Args:
        features_a, features_b: ``(N_a, D)`` and ``(N_b, D)``, at least 2 rows each.

    Returns:
        The distance (>= 0 up to rounding).
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two feature sets (N >= 2, same D), got shapes {a.shape} and {b.shape}")
    if max(len(a), len(b)) > a.shape[1]:
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

        stats = [fid_features_to_statistics(torch.from_numpy(f)) for f in (a, b)]
        return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])
    mean_a, mean_b = a.mean(0), b.mean(0)
    # np.cov divides by N - 1; the same scaling keeps this equal to the covariance path.
    ca, cb = (a - mean_a) / np.sqrt(len(a) - 1), (b - mean_b) / np.sqrt(len(b) - 1)
    tr_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    diff = mean_a - mean_b
    return float(diff @ diff + (ca * ca).sum() + (cb * cb).sum() - 2 * tr_sqrt)


def fid(real, fake, inception_weights: str | os.PathLike | None = None, batch_size: int = 32,
        device: str | torch.device = "cpu", model: torch.nn.Module | None = None) -> float:
    """Fréchet Inception Distance between two image sets (torch-fidelity's InceptionV3, 2048-d).

    Args:
        real, fake: uint8 ``(N, 3, H, W)`` tensors, float tensors in [0, 1], or numpy HWC
            batches; at least 2 images each (FID is biased for small N: compare values only at
            equal N).
        inception_weights: weights file, see :func:`load_inception`.
        batch_size: images per forward pass.
        device: where to run the extractor.
        model: an already loaded extractor (then ``inception_weights``/``device`` are unused).

    Returns:
        FID (0 for identical sets, larger is more different).
    """
    model = model if model is not None else load_inception(inception_weights, device)
    return frechet_distance(inception_features(model, real, batch_size), inception_features(model, fake, batch_size))
