"""Training steps are bit-reproducible on CPU with several threads.

Gathering codewords with advanced indexing (``codebook[codes]``) accumulates the codebook
gradient with an unordered parallel scatter on CPU, so two identical steps can differ in the
last bits and, through argmin flips, two training runs with the same seed drift apart.
"""
import pytest
import torch

from dac_diveq.quantize import METHODS, Quantizer


@pytest.mark.parametrize("method", METHODS)
def test_identical_steps_give_bit_identical_codebook_gradients(method):
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        grads = []
        for _ in range(4):
            torch.manual_seed(0)
            stage = Quantizer(16, 8, method, skip_iters=0, avg_iters=1)
            z = torch.randn(20000, 8, requires_grad=True)  # many latents per codeword: long sums
            out = stage(z)
            (out.z_q.square().sum() + out.aux_loss).backward()
            grads.append((stage.codebook.grad.clone() if stage.codebook.grad is not None else None, z.grad.clone()))
        for codebook_grad, z_grad in grads[1:]:
            if codebook_grad is not None:
                assert torch.equal(codebook_grad, grads[0][0])
            assert torch.equal(z_grad, grads[0][1])
    finally:
        torch.set_num_threads(threads)
