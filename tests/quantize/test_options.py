"""One declaration of the quantizer options (the core's), written into models' signatures."""
import inspect
from typing import List

import pytest
import torch

from dac_diveq.quantize import Quantizer
from dac_diveq.quantize.options import COMMON_OPTIONS, MODEL_OPTIONS, core_parameters, options_of, \
    takes_quantizer_options


@takes_quantizer_options(COMMON_OPTIONS, lookup="cosine")
class TinyModel(torch.nn.Module):
    def __init__(self, dim: int = 4, method: str = "diveq", **options) -> None:
        super().__init__()
        self.dim, self.method = dim, method
        self.received = dict(options)
        self.stage = Quantizer(8, dim, method, **options)


def test_parameters_carry_the_cores_types_and_defaults():
    core = inspect.signature(Quantizer.__init__).parameters
    for parameter in core_parameters():
        assert parameter.default == core[parameter.name].default
        # real types argbind parses (it knows typing.List[int], not list[int])
        assert parameter.annotation in (str, int, float, bool, List[int])
    assert core_parameters(["noise_var"], noise_var=1e-2)[0].default == 1e-2
    with pytest.raises(TypeError, match="nosuch"):
        core_parameters(["nosuch"])
    with pytest.raises(TypeError, match="noise_var"):
        core_parameters(["lookup"], noise_var=1e-2)  # an override of an option the model does not take


def test_a_decorated_model_takes_every_option_by_name_with_its_defaults():
    names = list(inspect.signature(TinyModel).parameters)
    assert names == ["dim", "method", *COMMON_OPTIONS]
    model = TinyModel(noise_var=5e-3)
    assert model.received == {**{p.name: p.default for p in core_parameters(COMMON_OPTIONS)},
                               "lookup": "cosine", "noise_var": 5e-3}
    assert options_of(model) == model.received  # stored under their names (for BaseModel.save)
    assert (model.stage.lookup, model.stage.noise_var) == ("cosine", 5e-3)
    assert TinyModel(6, "ste", "euclidean").stage.lookup == "euclidean"  # positional, as a written signature
    with pytest.raises(TypeError, match="commitment_weight"):
        TinyModel(commitment_weight=0.5)  # not exposed by this model


def test_a_model_without_options_keyword_is_refused():
    with pytest.raises(TypeError, match=r"\*\*options"):
        @takes_quantizer_options()
        class Fixed(torch.nn.Module):
            def __init__(self, dim: int = 4) -> None:
                super().__init__()


def test_model_options_are_core_options():
    core = set(inspect.signature(Quantizer.__init__).parameters)
    assert set(MODEL_OPTIONS) <= core and set(COMMON_OPTIONS) <= set(MODEL_OPTIONS)


def test_optional_options_reach_argbind_as_plain_types():
    # argbind leaves Optional-typed parameters off the command line and out of yml binding.
    (skip,) = core_parameters(["skip_iters"])
    assert skip.annotation is int and skip.default is None
