"""SpatialQuantizer: the core quantizers on (B, C, H, W) feature maps, shapes only changed."""
import math

import pytest
import torch

from dac_diveq.image import SpatialQuantizer
from dac_diveq.quantize import Quantizer


def test_single_equals_core_on_channels_last():
    z = torch.randn(2, 6, 5, 3)
    torch.manual_seed(0)
    core = Quantizer(32, 6, "diveq")
    torch.manual_seed(0)
    spatial = SpatialQuantizer(6, 32, "diveq")
    assert torch.equal(core.codebook, spatial.codebooks()[0])

    torch.manual_seed(1)
    ref = core(z.permute(0, 2, 3, 1))
    torch.manual_seed(1)  # same directional noise draws
    out = spatial(z)
    assert out.codes.shape == (2, 5, 3)
    assert torch.equal(out.codes, ref.codes)
    torch.testing.assert_close(out.z_q, ref.z_q.permute(0, 3, 1, 2), rtol=0, atol=0)
    assert set(out.metrics) == set(ref.metrics)


@pytest.mark.parametrize("structure", ["residual", "product"])
def test_multi_codebook_shapes(structure):
    q = SpatialQuantizer(8, 16, "diveq", structure=structure, n_quantizers=4)
    out = q(torch.randn(2, 8, 3, 5))
    assert out.z_q.shape == (2, 8, 3, 5)
    assert out.codes.shape == (2, 3, 5, 4)
    assert out.codes.dtype == torch.int64 and 0 <= int(out.codes.min()) and int(out.codes.max()) < 16
    dims = [cb.shape for cb in q.codebooks()]
    assert dims == [(16, 8)] * 4 if structure == "residual" else dims == [(16, 2)] * 4
    assert any(k.startswith("stage3/" if structure == "residual" else "group3/") for k in out.metrics)


LAYOUTS = [("single", 1, "stagewise"), ("residual", 3, "stagewise"), ("product", 2, "stagewise")]


@pytest.mark.parametrize("structure,n,mode,method", [
    *[(*layout, method) for layout in LAYOUTS for method in ("diveq", "sf_diveq", "gumbel")],
    ("residual", 3, "joint", "diveq"),
])
def test_eval_decode_of_codes_is_z_q(structure, n, mode, method):
    q = SpatialQuantizer(4, 8, method, structure=structure, n_quantizers=n, residual_mode=mode).eval()
    z = torch.randn(2, 4, 3, 3)
    out = q(z)
    torch.testing.assert_close(q.decode(out.codes), out.z_q, rtol=1e-5, atol=1e-5)
    assert torch.equal(q.encode(z), out.codes)


def test_encode_in_training_mode_leaves_training_state_alone():
    q = SpatialQuantizer(4, 8, "diveq")
    step = q.stages[0].maintenance.step
    codes = q.encode(torch.randn(1, 4, 2, 2))
    assert q.training and q.stages[0].maintenance.step == step
    assert codes.shape == (1, 2, 2)


def test_bad_structure_and_options_raise():
    with pytest.raises(ValueError, match="structure"):
        SpatialQuantizer(4, 8, structure="tree")
    with pytest.raises(ValueError, match="n_quantizers"):
        SpatialQuantizer(4, 8, structure="single", n_quantizers=2)
    with pytest.raises(ValueError, match="residual_mode"):
        SpatialQuantizer(4, 8, structure="product", n_quantizers=2, residual_mode="joint")
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        SpatialQuantizer(4, 8)(torch.randn(2, 3, 4, 4))


def test_bits_per_position_and_set_total_iters():
    assert SpatialQuantizer(4, 1024).bits_per_position == 10
    q = SpatialQuantizer(8, 512, structure="product", n_quantizers=4)
    assert q.bits_per_position == 4 * math.log2(512)
    q.set_total_iters(1234)
    assert all(s.maintenance.schedule.total_iters == 1234 for s in q.stages)


@pytest.mark.parametrize("structure, n", [("single", 1), ("residual", 2), ("product", 2)])
@pytest.mark.parametrize("method", ["diveq", "sf_diveq", "ste"])
def test_spatial_training_steps_do_not_read_tensor_values(structure, n, method):
    """On PyTorch's meta device any host read (.item(), bool()) raises: the adapter adds none."""
    quantizer = SpatialQuantizer(8, 16, method, structure=structure, n_quantizers=n, skip_iters=2, avg_iters=1,
                                 check_finite=False).to("meta")
    for _ in range(4):  # SF-DiVeQ: skip, initialise, quantize
        z = torch.randn(2, 8, 3, 3, device="meta", requires_grad=True)
        out = quantizer(z)
        (out.z_q.sum() + out.aux_loss).backward()
