"""Image metrics on a real photograph: identity, orderings under noise and blur, known values,
weight-file resolution. LPIPS and FID run with randomly initialised VGG16/InceptionV3 weights
that the tests write (no pretrained weights can be downloaded here); the orderings below were
checked to hold with them."""
import numpy as np
import pytest
import torch
from skimage import data
from torchvision.transforms.functional import gaussian_blur

from dac_diveq.metrics import image as m


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """astronaut, 64x64, ``(1, 3, 64, 64)`` in [0, 1]."""
    return torch.from_numpy(data.astronaut()[::8, ::8].copy()).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def vgg_path(tmp_path_factory):
    return m.make_random_vgg16_weights(tmp_path_factory.mktemp("w") / "vgg16_random.pth")


@pytest.fixture(scope="module")
def lpips_model(vgg_path):
    return m.load_lpips(vgg_path)


@pytest.fixture(autouse=True)
def no_weights_configured(monkeypatch, tmp_path):
    """Every test starts with no env var and an empty torch hub cache."""
    monkeypatch.delenv(m.VGG16_ENV, raising=False)
    monkeypatch.delenv(m.INCEPTION_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _noisy(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)


def test_identical_images(photo, lpips_model):
    assert m.psnr(photo, photo) == float("inf")
    assert m.ssim(photo, photo) == pytest.approx(1.0)
    assert float(m.lpips_distance(lpips_model, photo, photo)[0]) == pytest.approx(0.0, abs=1e-6)


def test_known_psnr_and_layouts():
    ref = np.zeros((8, 8, 3))
    est = np.full((8, 8, 3), 0.1)  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert m.psnr(ref, est) == pytest.approx(20.0)
    assert m.psnr(ref.astype(np.uint8), np.full((8, 8, 3), 51, np.uint8)) == pytest.approx(20 * np.log10(5))
    assert m.psnr(torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.1)) == pytest.approx(20.0)
    assert m.ssim(ref + 0.5, ref + 0.5) == pytest.approx(1.0)  # 8 px: smaller than SSIM's 11-px window
    with pytest.raises(ValueError, match="shape"):
        m.psnr(torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8))


def test_orderings_under_noise_and_blur(photo, lpips_model):
    for degrade, levels in ((_noisy, (0.02, 0.05, 0.1, 0.2)), (lambda x, s: gaussian_blur(x, 9, s), (0.5, 1, 2, 3))):
        batch = torch.cat([degrade(photo, level) for level in levels])
        ref = photo.expand_as(batch)
        p = m.psnr(ref, batch, per_image=True)
        s = m.ssim(ref, batch, per_image=True)
        d = m.lpips_distance(lpips_model, ref, batch).tolist()
        assert p == sorted(p, reverse=True) and s == sorted(s, reverse=True) and d == sorted(d), (p, s, d)
        assert m.psnr(ref, batch) == pytest.approx(np.mean(p))


def test_lpips_is_differentiable_and_frozen(photo, lpips_model):
    est = _noisy(photo, 0.1).requires_grad_(True)
    m.lpips_distance(lpips_model, photo, est).sum().backward()
    assert est.grad is not None and torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lpips_model.parameters())
    lpips_model.train()
    assert not lpips_model.training  # Dropout in the heads must stay off inside a training loop


def test_vgg16_weight_resolution(vgg_path, tmp_path, monkeypatch):
    with pytest.raises(m.WeightsNotFoundError, match="DAC_DIVEQ_VGG16") as missing:
        m.load_lpips()
    assert "\n" not in str(missing.value) and "vgg16-397923af.pth" in str(missing.value)
    with pytest.raises(m.WeightsNotFoundError, match="nowhere.pth"):
        m.load_lpips(tmp_path / "nowhere.pth")

    monkeypatch.setenv(m.VGG16_ENV, str(vgg_path))
    model = m.load_lpips()
    assert str(vgg_path) in model.weights_source and "NOT the official" in model.weights_source
    monkeypatch.delenv(m.VGG16_ENV)

    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "vgg16-397923af.pth").symlink_to(vgg_path)
    assert str(cache) in m.load_lpips().weights_source  # found in the torch hub cache
    with pytest.raises(m.WeightsNotFoundError):
        m.inception_weights_source()

    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(m.WeightsFormatError, match="not a torchvision VGG16 state dict"):
        m.load_lpips(wrong)
    wrong.write_bytes(b"not a checkpoint")
    with pytest.raises(m.WeightsFormatError, match="cannot read"):
        m.load_lpips(wrong)


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    path = m.make_random_inception_weights(tmp_path_factory.mktemp("w") / "inception_random.pth")
    return path, m.load_inception(path)


def test_fid_zero_for_identical_sets_and_grows_with_noise(inception):
    # Few, small images: every image is resized to 299 px, so each costs a full InceptionV3 pass.
    path, model = inception
    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)
    real = torch.stack([img[:, 100 + 48 * i:148 + 48 * i, 150:198] for i in range(5)])  # uint8, 48x48
    sets = (real.float() / 255, _noisy(real.float() / 255, 0.05), _noisy(real.float() / 255, 0.2))
    features = m.inception_features(model, torch.cat(sets)).split(len(real))
    assert features[0].shape == (5, 2048)
    assert m.frechet_distance(features[0], features[0]) == pytest.approx(0.0, abs=1e-6)
    small, large = m.frechet_distance(features[0], features[1]), m.frechet_distance(features[0], features[2])
    assert 0.0 < small < large, (small, large)
    # End to end on uint8 against float input: the same features, so the same as above.
    assert m.fid(real[:2], sets[2][:2], model=model) == pytest.approx(
        m.frechet_distance(features[0][:2], features[2][:2]), rel=1e-4)
    assert "NOT the official" in model.weights_source and str(path) in model.weights_source


def _frechet_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (slow for D = 2048, fine for small D)."""
    from scipy.linalg import sqrtm

    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + np.trace(sa) + np.trace(sb) - 2 * np.trace(sqrtm(sa @ sb).real))


@pytest.mark.parametrize("n_a, n_b, dim", [(10, 12, 40), (60, 50, 8)])  # sample-space / torch-fidelity branch
def test_frechet_distance_matches_textbook_formula(n_a, n_b, dim):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n_a, dim)), rng.standard_normal((n_b, dim)) * 1.5 + 0.3
    assert m.frechet_distance(a, b) == pytest.approx(_frechet_reference(a, b), rel=1e-6)


def test_inception_weight_resolution(inception, vgg_path, monkeypatch):
    with pytest.raises(m.WeightsNotFoundError, match="DAC_DIVEQ_INCEPTION") as missing:
        m.load_inception()
    assert "weights-inception-2015-12-05-6726825d.pth" in str(missing.value)
    monkeypatch.setenv(m.INCEPTION_ENV, str(inception[0]))
    source = m.inception_weights_source()
    assert str(inception[0]) in source
    with pytest.raises(m.WeightsFormatError, match="not torch-fidelity InceptionV3 weights") as wrong:
        m.load_inception(vgg_path)
    assert "\n" not in str(wrong.value)
