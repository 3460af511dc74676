"""Bad inputs and options fail early with errors that name what is wrong."""
from __future__ import annotations

import re

import pytest
import torch

from dac_diveq.quantize import (
    METHODS,
    ProductQuantizer,
    Quantizer,
    ResidualQuantizer,
    ResidualVectorQuantize,
    VectorQuantize,
)

SF = ("sf_diveq", "sf_diveq_detach")


# ---------------------------------------------------------------------------- inputs
@pytest.fixture(params=["train", "eval"])
def stage(request):
    q = Quantizer(16, 8, "diveq")
    q.train(request.param == "train")
    return q


@pytest.mark.parametrize("shape", [(4, 7), (4, 9), (8, 4), (2, 3, 16)])
def test_wrong_last_dimension_names_expected_shape(stage, shape):
    with pytest.raises(ValueError, match=re.escape("(..., 8)")) as err:
        stage(torch.randn(*shape))
    assert str(tuple(shape)) in str(err.value)


def test_scalar_input_is_rejected(stage):
    with pytest.raises(ValueError, match=re.escape("(..., 8)")):
        stage(torch.tensor(1.0))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_latents_are_rejected_on_cpu(stage, bad):
    z = torch.randn(4, 8)
    z[2, 3] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        stage(z)


@pytest.mark.parametrize("shape", [(0, 8), (3, 0, 8)])
def test_empty_batch_is_rejected(stage, shape):
    with pytest.raises(ValueError, match="empty batch"):
        stage(torch.zeros(shape))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_non_float_input_is_a_type_error(stage, dtype):
    with pytest.raises(TypeError, match="floating"):
        stage(torch.ones(4, 8, dtype=dtype))


def test_non_tensor_input_is_a_type_error(stage):
    with pytest.raises(TypeError, match="torch.Tensor"):
        stage([[0.0] * 8])


def test_rejected_input_leaves_the_training_state_untouched():
    q = Quantizer(16, 8, "diveq")
    before = q.codebook.detach().clone()
    with pytest.raises(ValueError):
        q(torch.full((4, 8), float("nan")))
    assert q.maintenance.step == 0
    assert torch.equal(q.codebook, before)


def test_wrappers_validate_their_input():
    rq, pq = ResidualQuantizer(2, 16, 8, "diveq"), ProductQuantizer(2, 16, 8, "diveq")
    for module in (rq, pq):
        with pytest.raises(ValueError, match=re.escape("(..., 8)")):
            module(torch.randn(4, 6))
        with pytest.raises(ValueError, match="NaN or inf"):
            module(torch.tensor([[float("nan")] + [0.0] * 7]))
        with pytest.raises(ValueError, match="empty batch"):
            module(torch.zeros(0, 8))
        with pytest.raises(TypeError, match="floating"):
            module(torch.ones(4, 8, dtype=torch.long))


# ---------------------------------------------------------------------------- options
def test_unknown_method_lists_the_valid_methods():
    with pytest.raises(ValueError, match="unknown quantization method 'vqvae'") as err:
        Quantizer(16, 8, "vqvae")
    for name in METHODS:
        assert repr(name) in str(err.value), name


@pytest.mark.parametrize("factory", [
    lambda m: ResidualQuantizer(2, 16, 8, m),
    lambda m: ProductQuantizer(2, 16, 8, m),
    lambda m: VectorQuantize(8, 16, 4, method=m),
    lambda m: ResidualVectorQuantize(8, 2, 16, 4, method=m),
])
def test_wrappers_reject_unknown_methods(factory):
    with pytest.raises(ValueError, match="unknown quantization method 'Diveq'"):
        factory("Diveq")


@pytest.mark.parametrize("method, options, option", [
    ("diveq", dict(noise_var=-1e-3), "noise_var"),
    ("diveq", dict(noise_var=0.0), "noise_var"),
    ("diveq", dict(noise_var=float("nan")), "noise_var"),
    ("sf_diveq", dict(noise_var=0.0), "noise_var"),
    ("diveq", dict(lookup="manhattan"), "lookup"),
    ("ste", dict(discard_threshold=-0.1), "discard_threshold"),
    ("diveq", dict(perturb_eps=-1.0), "perturb_eps"),
    ("sf_diveq", dict(skip_iters=-1), "skip_iters"),
    ("sf_diveq_detach", dict(skip_iters=-5), "skip_iters"),
    ("sf_diveq", dict(skip_iters=10, avg_iters=20), "avg_iters"),
    ("sf_diveq", dict(skip_iters=10, avg_iters=0), "avg_iters"),
    ("sf_diveq", dict(latents_per_code=0), "latents_per_code"),
    ("sf_diveq", dict(sf_inference="segment"), "sf_inference"),
    ("ema", dict(ema_decay=1.0), "ema_decay"),
    ("ema", dict(ema_decay=0.0), "ema_decay"),
    ("gumbel", dict(gumbel_temperature=(1.0, 0.0)), "gumbel_temperature"),
    ("diveq", dict(replace_every=100, replace_every_after=0), "replace_every_after"),
    ("diveq", dict(total_iters=0), "total_iters"),
    ("diveq", dict(replace_slowdown_at=-1), "slowdown_at"),
    ("diveq", dict(replace_stop_before_end=-1), "stop_before_end"),
])
def test_invalid_option_is_named(method, options, option):
    with pytest.raises(ValueError, match=option):
        Quantizer(16, 8, method, **options)


@pytest.mark.parametrize("option", ["commitment_weight", "codebook_weight", "kl_weight"])
def test_negative_loss_weight_is_named(option):
    with pytest.raises(ValueError, match=option):
        Quantizer(16, 8, "ste", **{option: -1.0})


@pytest.mark.parametrize("method", SF)
def test_space_filling_needs_two_codewords(method):
    with pytest.raises(ValueError, match="codebook_size"):
        Quantizer(1, 8, method)
    Quantizer(2, 8, method)  # the smallest valid curve: one segment


@pytest.mark.parametrize("size, dim, option", [
    (0, 8, "codebook_size"), (-4, 8, "codebook_size"), (2.5, 8, "codebook_size"),
    (16, 0, "dim"), (16, 1.5, "dim"),
])
def test_invalid_sizes_are_named(size, dim, option):
    with pytest.raises(ValueError, match=option):
        Quantizer(size, dim, "diveq")


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="noise_variance"):
        Quantizer(16, 8, "diveq", noise_variance=1e-3)
    with pytest.raises(TypeError, match="noise_variance"):
        ResidualQuantizer(2, 16, 8, "diveq", noise_variance=1e-3)
    with pytest.raises(TypeError, match="noise_variance"):
        ProductQuantizer(2, 16, 8, "diveq", noise_variance=1e-3)
    with pytest.raises(TypeError, match="noise_variance"):
        VectorQuantize(8, 16, 4, method="diveq", noise_variance=1e-3)


JOINT = {"diveq", "diveq_detach", "sf_diveq", "sf_diveq_detach"}


@pytest.mark.parametrize("method", sorted(set(METHODS) - JOINT))
def test_joint_residual_mode_only_for_the_diveq_family(method):
    with pytest.raises(ValueError, match="residual_mode='joint'"):
        ResidualQuantizer(2, 16, 8, method, residual_mode="joint")
    with pytest.raises(ValueError, match="residual_mode='joint'"):
        ResidualVectorQuantize(8, 2, 16, 4, method=method, residual_mode="joint")


@pytest.mark.parametrize("method", sorted(JOINT))
def test_joint_residual_mode_accepted_for_the_diveq_family(method):
    ResidualQuantizer(2, 16, 8, method, residual_mode="joint")
    ResidualVectorQuantize(8, 2, 16, 4, method=method, residual_mode="joint")


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"diveq", "diveq_detach"}))
def test_stagewise_hard_only_for_diveq(method):
    # SF-DiVeQ's training choice is a dithered point, not a codeword: no hard chain to value it at.
    with pytest.raises(ValueError, match="residual_mode='stagewise_hard'"):
        ResidualQuantizer(2, 16, 8, method, residual_mode="stagewise_hard")
    with pytest.raises(ValueError, match="residual_mode='stagewise_hard'"):
        ResidualVectorQuantize(8, 2, 16, 4, method=method, residual_mode="stagewise_hard")


def test_unknown_residual_mode_is_named():
    with pytest.raises(ValueError, match="unknown residual_mode 'parallel'"):
        ResidualQuantizer(2, 16, 8, "diveq", residual_mode="parallel")
    with pytest.raises(ValueError, match="unknown residual_mode 'parallel'"):
        ResidualVectorQuantize(8, 2, 16, 4, method="diveq", residual_mode="parallel")


@pytest.mark.parametrize("kwargs, option", [
    (dict(n_quantizers=0), "n_quantizers"),
    (dict(quantizer_dropout=1.5), "quantizer_dropout"),
    (dict(quantizer_dropout=-0.1), "quantizer_dropout"),
])
def test_invalid_residual_options_are_named(kwargs, option):
    args = dict(n_quantizers=2, codebook_size=16, dim=8, method="diveq")
    args.update(kwargs)
    with pytest.raises(ValueError, match=option):
        ResidualQuantizer(**args)


@pytest.mark.parametrize("n", [0, -1, -3])
def test_eval_n_quantizers_must_be_positive(n):
    """``n_quantizers`` selects how many stages decode; a non-positive count is a caller error
    (-1 must not silently mean 'all but the last stage' through list slicing)."""
    rq = ResidualQuantizer(4, 16, 8, "diveq").eval()
    with pytest.raises(ValueError, match="n_quantizers"):
        rq(torch.randn(5, 8), n_quantizers=n)


def test_eval_n_quantizers_beyond_the_stages_uses_all_of_them():
    rq = ResidualQuantizer(4, 16, 8, "diveq").eval()
    z = torch.randn(5, 8)
    assert torch.equal(rq(z, n_quantizers=10).codes, rq(z).codes)
    assert rq(z, n_quantizers=2).codes.shape == (5, 2)


@pytest.mark.parametrize("groups", [3, 5, 0, -2])
def test_product_groups_must_divide_dim(groups):
    with pytest.raises(ValueError, match=f"n_groups={groups}"):
        ProductQuantizer(groups, 16, 8, "diveq")


def test_codebook_initialisations():
    normal = Quantizer(64, 8, "ste", codebook_init="normal").codebook.detach()
    uniform = Quantizer(64, 8, "ste", codebook_init="uniform").codebook.detach()
    assert 0.7 < float(normal.std()) < 1.3 and float(normal.min()) < 0  # DAC's N(0, 1)
    assert float(uniform.min()) >= 0 and float(uniform.max()) < 1 / 64  # the authors' U(0, 1/K)
    with pytest.raises(ValueError, match="codebook_init"):
        Quantizer(64, 8, "ste", codebook_init="kmeans")
