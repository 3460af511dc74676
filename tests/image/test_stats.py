"""Codebook statistics of image quantizers, checked against direct computations."""
import math

import pytest
import torch

from dac_diveq.image import SpatialQuantizer
from dac_diveq.image import stats


@pytest.mark.parametrize("structure, n", [("single", 1), ("residual", 3), ("product", 2)])
def test_distortion_and_usage_match_direct_computation(structure, n):
    torch.manual_seed(0)
    quantizer = SpatialQuantizer(4, 8, "ste", structure=structure, n_quantizers=n).eval()
    z = torch.randn(2, 4, 3, 5)
    codes = quantizer.encode(z)
    acc = stats.new_accumulator(quantizer)
    stats.accumulate(acc, quantizer, z, codes)
    summary = acc.summary()
    assert len(summary["stages"]) == n

    vectors = z.permute(0, 2, 3, 1).reshape(-1, 4)
    codes = codes.reshape(len(vectors), -1)
    residual = vectors
    for i, (stage, codebook) in enumerate(zip(summary["stages"], quantizer.codebooks())):
        target = vectors.split(4 // n, dim=1)[i] if structure == "product" else residual
        chosen = codebook.detach()[codes[:, i]]
        expected = float((target - chosen).pow(2).sum(1).mean())
        assert stage["distortion"] == pytest.approx(expected, rel=1e-6)
        assert stage["distortion_per_bit"] == pytest.approx(expected / math.log2(8), rel=1e-6)
        assert stage["usage"] == pytest.approx(len(set(codes[:, i].tolist())) / 8)
        if structure == "residual":
            residual = residual - chosen
    # the residual stages reduce the error stage after stage (nearest codewords, fresh codebooks)
    if structure == "residual":
        assert summary["stages"][0]["distortion"] > float((residual).pow(2).sum(1).mean())
