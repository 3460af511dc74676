"""Ordinary training steps never read tensor values on the host.

Tensors on PyTorch's ``meta`` device have shapes but no data, so any ``.item()``, ``bool()``,
``int()`` or Python branch on a tensor value raises. A forward+backward that runs on ``meta``
therefore does no host-device synchronisation on a real accelerator either.
"""
import pytest
import torch

from dac_diveq.quantize import METHODS, Quantizer, ResidualVectorQuantize


@pytest.mark.parametrize("method", METHODS)
def test_training_steps_run_without_reading_tensor_values(method):
    stage = Quantizer(32, 8, method, skip_iters=3, avg_iters=2, check_finite=False).to("meta")
    for _ in range(6):  # covers SF-DiVeQ's skip, capture, initialisation and quantizing steps
        z = torch.randn(4, 10, 8, device="meta", requires_grad=True)
        out = stage(z)
        (out.z_q.sum() + out.aux_loss).backward()
        assert all(v.device.type == "meta" for v in out.metrics.values())


def test_dac_residual_layer_runs_without_reading_tensor_values():
    rvq = ResidualVectorQuantize(32, 3, 64, 8, method="diveq", quantizer_dropout=0.5,
                                 check_finite=False).to("meta")
    z = torch.randn(2, 32, 5, device="meta", requires_grad=True)
    out = rvq(z)
    out[0].sum().backward()


def test_the_check_detects_host_reads_such_as_a_replacement_decision():
    stage = Quantizer(32, 8, "diveq", replace_every=1, check_finite=False).to("meta")
    stage(torch.randn(4, 8, device="meta"))
    with pytest.raises((RuntimeError, NotImplementedError)):
        stage(torch.randn(4, 8, device="meta"))  # runs the replacement due after step 1
