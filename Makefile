# The two commands a fresh machine needs are `make demo` and `make test`; both set up first.
SHELL := /bin/bash
APP := .venvs/app/bin

.PHONY: setup demo test lint down locks clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(APP)/rtrec demo

test: setup
	@bash scripts/test.sh

lint: setup
	@$(APP)/ruff check . && $(APP)/ruff format --check . && $(APP)/mypy

down:
	@$(APP)/rtrec local down

# Regenerate requirements/*.lock after changing an extra in pyproject.toml.
locks: setup
	@UV=$$(ls -d $${RTREC_CACHE:-$$HOME/.cache/rtrec}/tools/uv-*/bin/uv | tail -1) bash requirements/compile.sh

clean: down
	rm -rf .run
