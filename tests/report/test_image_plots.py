"""Image-track figures: the PCA projection is right, the PNGs are written."""
import numpy as np
import torch

from dac_diveq.report import image_plots


def test_pca_projection_finds_the_principal_plane():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(500, 6)) * np.array([5.0, 2.0, 0.1, 0.1, 0.1, 0.1])
    codebook = rng.normal(size=(10, 6))
    points, (codewords,) = image_plots.pca_projection(latents, [codebook])
    assert points.shape == (500, 2) and codewords.shape == (10, 2)
    variances = points.var(0)
    assert variances[0] > variances[1] > 3.0  # the two large axes (variances 25 and 4), in order
    assert abs(points.mean(0)).max() < 1e-9
    # codewords use the same affine map: projecting a latent as a "codeword" gives its point
    _, (again,) = image_plots.pca_projection(latents, [latents[:3]])
    np.testing.assert_allclose(again, points[:3], atol=1e-9)


def test_figures_are_pngs(tmp_path):
    images = torch.rand(4, 3, 8, 8)
    grid = image_plots.image_grid((images, images.flip(0)), tmp_path / "grid.png", titles=("a", "b"))
    scatter = image_plots.codebook_vs_latents(np.random.rand(7000, 4), [np.random.rand(16, 4)],
                                              tmp_path / "scatter.png", title="t")
    for path in (grid, scatter):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
