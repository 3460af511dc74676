"""Bitrate arithmetic and code-histogram statistics."""
import math

import numpy as np
import pytest
import torch

from dac_diveq.metrics import codebook as cb


def test_bitrate_arithmetic():
    assert cb.bitrate_kbps(50.0, 12, 1024) == pytest.approx(6.0)
    assert cb.bitrate_kbps(44100 / 512, 9, 1024) == pytest.approx(7.75, abs=0.01)
    assert cb.bitrate_kbps(86.13, 9, 1024) == pytest.approx(7.75, abs=0.01)


def test_entropy_uniform_and_one_hot():
    assert cb.entropy_bits(np.ones(1024)) == pytest.approx(10.0)
    assert cb.perplexity(np.full(64, 7)) == pytest.approx(64.0)
    one_hot = np.zeros(1024)
    one_hot[3] = 500
    assert cb.entropy_bits(one_hot) == 0.0
    assert cb.perplexity(one_hot) == 1.0
    assert cb.entropy_bits(np.zeros(8)) == 0.0


def test_usage_and_perplexity_of_known_codes():
    codes = torch.tensor([[0, 1, 1, 2], [2, 2, 0, 1]])  # 8 codes over 3 of 8 codewords
    counts = cb.code_histogram(codes, 8)
    assert counts.tolist() == [2, 3, 3, 0, 0, 0, 0, 0]
    assert cb.usage(counts) == pytest.approx(3 / 8)
    p = np.array([2, 3, 3]) / 8
    assert cb.entropy_bits(counts) == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert cb.perplexity(counts) == pytest.approx(2 ** cb.entropy_bits(counts))


def test_accumulator_distortion_per_bit():
    acc = cb.CodebookAccumulator(n_stages=2, codebook_size=16)
    z_e = torch.zeros(1, 2, 4)
    codewords = torch.ones(1, 2, 4)  # squared distance 2 per vector
    codes = torch.tensor([[0, 1, 2, 3]])
    acc.add(0, codes, z_e, codewords)
    acc.add(1, codes * 0, z_e, z_e)
    s = acc.summary()
    assert [st["stage"] for st in s["stages"]] == [0, 1]
    assert s["stages"][0]["distortion"] == pytest.approx(2.0)
    assert s["stages"][0]["distortion_per_bit"] == pytest.approx(2.0 / math.log2(16))
    assert s["stages"][0]["usage"] == pytest.approx(4 / 16)
    assert s["stages"][1]["distortion"] == 0.0
    assert s["stages"][1]["perplexity"] == pytest.approx(1.0)
    assert s["mean_usage"] == pytest.approx((4 / 16 + 1 / 16) / 2)
