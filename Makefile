# AICode Manager — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin/aicli
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
DIST      := static/dist
TEMPL     := $(GO) tool templ
# Tests that need the real Docker engine, PostgreSQL and Chromium run with
# these; .ci/run provides all of them on a fresh Debian machine.
TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: node_modules/.package-lock.json ## Install front-end packages from npm (package-lock.json)

.PHONY: generate
generate: ## Generate Go code from templ templates
	$(TEMPL) generate

.PHONY: assets
assets: deps ## Build CSS and copy browser libraries into static/dist (embedded)
	@mkdir -p $(DIST)
	npx tailwindcss -c tailwind.config.js -i static/src/app.css -o $(DIST)/app.css --minify
	cp node_modules/htmx.org/dist/htmx.min.js $(DIST)/htmx.min.js
	cp node_modules/htmx-ext-sse/dist/sse.min.js $(DIST)/htmx-sse.js
	cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css $(DIST)/
	cp node_modules/@xterm/addon-fit/lib/addon-fit.js node_modules/@xterm/addon-web-links/lib/addon-web-links.js $(DIST)/
	cp static/src/app.js static/src/theme.js static/src/terminal.js static/src/favicon.svg $(DIST)/
	cp static/src/logs.js $(DIST)/
	cp static/src/tasks.js $(DIST)/
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(DIST)/
	cp static/src/monitor.js $(DIST)/

.PHONY: build
build: generate assets ## Build the single binary into bin/aicli
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/aicli

.PHONY: run
run: build ## Build everything and start the server with the embedded defaults
	./$(BIN) serve

.PHONY: workspace-image
workspace-image: ## Build the default workspace image (registry needed; see workspace-image-offline)
	docker build -t aicode-workspace:latest docker/workspace

.PHONY: workspace-image-offline
workspace-image-offline: ## Build the same image without a registry (debootstrap + docker import; root)
	docker/workspace/build-offline.sh

.PHONY: check
check: generate ## gofmt, go vet, and generated files up to date
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	@if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- '*_templ.go'; then \
		echo "generated templ files are out of date; run 'make generate' and commit:"; git diff --stat -- '*_templ.go'; exit 1; fi

.PHONY: test
test: check assets ## Run every test CI runs (prepares PostgreSQL, Chromium, images: scripts/test-env.sh)
	@env_lines="$$(scripts/test-env.sh)" && eval "$$env_lines" && $(GO) test $(TEST_FLAGS) ./...

.PHONY: bench
bench: assets ## Run the benchmarks; prints BENCH <name> <value> <unit> lines
	@env_lines="$$(scripts/test-env.sh)" && eval "$$env_lines" && $(GO) test -count=1 -timeout 60m -run '^$$' -bench . -benchtime 1x ./bench/ | tee bench.out | grep -E '^BENCH ' || true

.PHONY: clean
clean: ## Remove build output
	rm -rf bin $(DIST)/*.css $(DIST)/*.js $(DIST)/*.svg
