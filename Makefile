PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN := runs/quickstart/diveq/seed0
WEIGHTS := $(RUN)/best/diveqdac/weights.pth
# Intra-op threads of the quickstarts: seeded runs are bit-identical at one thread count and differ
# between counts, and the figures the README quotes were measured at 2 (override: make ... THREADS=1).
THREADS ?= 2

.PHONY: setup system-deps test test-fast lint-imports quickstart image-quickstart check-readme bench bench-train gpu-check

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

# Everything, the import contracts included (tests/test_architecture.py runs import-linter).
test: setup system-deps
	$(VPY) -m pytest -q tests

# The quick tier: no training runs, no launched processes (tests marked slow), for edit-test loops.
test-fast: setup
	$(VPY) -m pytest -q -m "not slow" tests

# The import contracts of docs/architecture.md on their own (setup.cfg [importlinter]).
lint-imports: setup
	$(VENV)/bin/lint-imports setup.cfg

# The main job on the embedded data, CPU: prepare speech, train a DiVeQ and an STE codec on the
# same data and budget, evaluate both on the held-out test set, encode/decode it with the DiVeQ
# codec through the CLI, and end with the comparison table. Re-running resumes/skips what is done.
quickstart: setup system-deps
	OMP_NUM_THREADS=$(THREADS) $(VPY) recipes/speech_compare.py --size quickstart --methods diveq ste --seeds 0 --ladder 3 6 12 --jobs 2 \
		--root runs/quickstart --report runs/quickstart/report --force --no_headline
	$(VPY) -m dac_diveq encode data/speech/test --output $(RUN)/codes --weights_path $(WEIGHTS) --device cpu
	$(VPY) -m dac_diveq decode $(RUN)/codes --output $(RUN)/decoded --weights_path $(WEIGHTS) --device cpu
	$(VPY) -m dac_diveq info $(WEIGHTS)
	$(VPY) scripts/score_decoded.py data/speech/test $(RUN)/decoded
	@echo "== DiVeQ vs STE (runs/quickstart/report/README.md has the full report) =="
	@cat runs/quickstart/report/headline.md

# The image track on CPU: a small VQ-VAE trained with DiVeQ and with STE (64 codewords) on crops
# of scikit-image's photographs, evaluated on held-out photographs; ends with the PSNR/SSIM table.
image-quickstart: setup
	OMP_NUM_THREADS=$(THREADS) $(VPY) recipes/image_compare.py --size quickstart --methods diveq ste --bits 6 --seeds 0 \
		--root runs/image/quickstart --report runs/image/quickstart/report --force

# The README's image-quickstart figures, re-measured and compared (about a minute on an idle 2-core CPU).
check-readme: image-quickstart
	$(VPY) scripts/check_readme.py --headline runs/image/quickstart/report/headline.md

bench: setup
	$(VPY) scripts/bench_quantizer.py

# Training-step speed-ups against today's trainer (quickstart model and batch), paired A B A B.
bench-train: setup system-deps
	$(VPY) scripts/prepare_data.py --root data --no_progress
	$(VPY) scripts/bench_train.py --variants baseline fused_snake fused_snake_1_thread --rounds 3

# On a CUDA machine (about 8 minutes): every method's stage under bf16 autocast, a tiny corpus prepared by
# prepare_data --corpus libritts (LibriTTS layout, no download), 200-step trainings of the
# 16 kHz layout with the discriminator (DiVeQ, STE) on it, a resume, encode/decode and the quantizer benchmark
# on CUDA; one summary table, also in reports/gpu_check/README.md. Without CUDA it fails in one line
# (a GPU machine with a broken driver must not pass): make gpu-check GPU_CHECK_ARGS=--allow-no-gpu accepts it.
gpu-check: setup
	$(VPY) scripts/gpu_check.py $(GPU_CHECK_ARGS)
