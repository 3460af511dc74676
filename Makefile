PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test

setup: $(STAMP)

$(VPY):
	$(PY) -m venv $(VENV)

# Reinstall only when the dependency declarations change.
$(STAMP): setup.cfg pyproject.toml constraints.txt | $(VPY)
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: setup
	$(VPY) -m pytest -q tests
