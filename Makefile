PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN := runs/quickstart/diveq
WEIGHTS := $(RUN)/best/diveqdac/weights.pth

.PHONY: setup system-deps test quickstart bench

setup: $(STAMP)

$(VPY):
	$(PY) -m venv $(VENV)

# Reinstall only when the dependency declarations change.
$(STAMP): setup.cfg pyproject.toml constraints.txt | $(VPY)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

system-deps:
	bash scripts/install_system_deps.sh

test: setup system-deps
	$(VPY) -m pytest -q tests

# The main job on the embedded data, CPU: prepare speech, train a DiVeQ codec, encode and decode
# the real test clips, score them. Re-running resumes/skips what is done.
quickstart: setup system-deps
	$(VPY) scripts/prepare_data.py --root data
	$(VPY) scripts/train.py --args.load conf/quickstart/diveq.yml --resume
	$(VPY) -m dac_diveq encode data/speech/test_real --output $(RUN)/codes --weights_path $(WEIGHTS) --device cpu
	$(VPY) -m dac_diveq decode $(RUN)/codes --output $(RUN)/decoded --weights_path $(WEIGHTS) --device cpu
	$(VPY) -m dac_diveq info $(WEIGHTS)
	$(VPY) scripts/score_decoded.py data/speech/test_real $(RUN)/decoded

bench: setup
	$(VPY) scripts/bench_quantizer.py
