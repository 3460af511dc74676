"""The core stands alone: importing it and training with it loads neither DAC nor audiotools (checked
in a fresh interpreter, where nothing else has imported them yet)."""
import json

import pytest

from tests.conftest import run_python

pytestmark = pytest.mark.slow  # launches fresh interpreters

HEAVY = ("dac", "audiotools")

PROBE = """
import json, sys
{body}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
ours = sorted(m for m in sys.modules if m.startswith("dac_diveq."))
print(json.dumps({{"heavy": heavy, "ours": ours}}))
"""

TRAINING_STEP = """
import torch
import dac_diveq.quantize as q
torch.manual_seed(0)
encoder = torch.nn.Linear(6, 4)
stage = q.Quantizer(16, 4, "diveq", replace_every=1, discard_threshold=0.5)
optimizer = torch.optim.Adam([*encoder.parameters(), *stage.parameters()], lr=1e-2)
x = torch.randn(64, 6)
before = stage.codebook.detach().clone()
for _ in range(3):
    out = stage(encoder(x))
    loss = (out.z_q - x[:, :4]).pow(2).mean() + out.aux_loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
assert out.codes.shape == (64,) and not torch.equal(before, stage.codebook)
"""


def _probe(body: str) -> dict:
    result = run_python(["-c", PROBE.format(body=body, heavy=HEAVY)])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_core_loads_neither_dac_nor_audiotools():
    loaded = _probe("import dac_diveq.quantize")
    assert loaded["heavy"] == []
    # Besides itself, only the neutral error types (dac_diveq/errors.py imports nothing of ours).
    allowed = ("dac_diveq.quantize", "dac_diveq.__", "dac_diveq.errors")
    assert all(m.startswith(allowed) for m in loaded["ours"]), loaded["ours"]


def test_a_training_step_of_the_core_loads_neither_dac_nor_audiotools():
    loaded = _probe(TRAINING_STEP)
    assert loaded["heavy"] == []


def test_importing_the_package_and_the_training_layer_stays_light():
    loaded = _probe("import dac_diveq, dac_diveq.training.loop, dac_diveq.training.checkpoint")
    assert loaded["heavy"] == []
    assert not [m for m in loaded["ours"] if m.startswith(("dac_diveq.codec", "dac_diveq.image"))]


def test_the_dac_layers_stay_reachable_from_the_core_and_the_package():
    loaded = _probe("""
import dac_diveq, dac_diveq.quantize as q
from dac_diveq.codec import dac_layers
assert q.VectorQuantize is dac_layers.VectorQuantize
assert q.ResidualVectorQuantize is dac_layers.ResidualVectorQuantize
from dac_diveq.codec.model import DiVeQDAC
assert dac_diveq.DiVeQDAC is DiVeQDAC and callable(dac_diveq.from_dac) and callable(dac_diveq.export_to_dac)
""")
    assert "dac" in loaded["heavy"] and "audiotools" in loaded["heavy"]
