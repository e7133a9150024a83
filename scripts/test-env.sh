#!/usr/bin/env bash
# Prepares everything the test suite needs and prints the environment for
# it as `export` lines (progress goes to stderr), so `make test` can do
#   eval "$(scripts/test-env.sh)" && go test ./...
#
# Needs: a Docker engine, PostgreSQL, Chromium, busybox-static, wrk (for
# the benchmarks) and the default workspace image. On Debian/Ubuntu as root, whatever is missing is
# installed and started (idempotently); elsewhere the script says what to
# install and stops.
set -euo pipefail

log() { printf '[test-env] %s\n' "$*" >&2; }
die() { printf '[test-env] ERROR: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
can_install=false
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	can_install=true
fi

apt_updated=false
apt_install() {
	$can_install || die "missing: $*; install them (Debian/Ubuntu: apt-get install $*) or run as root on Debian to have this script do it"
	if ! $apt_updated; then
		log "apt-get update"
		apt-get update -qq >&2
		apt_updated=true
	fi
	log "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# --- Docker engine -----------------------------------------------------------
if ! command -v docker >/dev/null 2>&1; then
	apt_install docker.io
fi
if ! docker info >/dev/null 2>&1; then
	command -v dockerd >/dev/null 2>&1 || apt_install docker.io
	$can_install || die "no Docker engine answers; start one (or set DOCKER_HOST)"
	log "starting dockerd (iptables off: the host firewall is left untouched)"
	mkdir -p /var/log
	nohup dockerd --iptables=false --ip6tables=false >/var/log/aicode-dockerd.log 2>&1 &
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && break
		sleep 1
	done
	docker info >/dev/null 2>&1 || die "dockerd did not come up; see /var/log/aicode-dockerd.log"
fi
log "docker engine: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# --- busybox-static (tests build their tiny image from it) -------------------
if [ ! -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
	apt_install busybox-static
fi

# --- wrk (load generator of the benchmarks) ----------------------------------
if ! command -v wrk >/dev/null 2>&1; then
	apt_install wrk
fi

# --- Chromium (browser tests) -------------------------------------------------
chrome="${AICODE_TEST_CHROME:-}"
if [ -z "$chrome" ]; then
	for c in chromium chromium-browser google-chrome; do
		if command -v "$c" >/dev/null 2>&1; then chrome=$(command -v "$c"); break; fi
	done
fi
if [ -z "$chrome" ]; then
	apt_install chromium
	chrome=$(command -v chromium)
fi
log "chromium: $chrome"

# --- PostgreSQL (second store backend) ---------------------------------------
pg_url="${AICODE_TEST_POSTGRES_URL:-}"
if [ -z "$pg_url" ]; then
	pg_url="postgres://aicode:aicode@127.0.0.1:5432/aicode_test?sslmode=disable"
	if ! command -v pg_ctlcluster >/dev/null 2>&1; then
		apt_install postgresql
	fi
	$can_install || die "set AICODE_TEST_POSTGRES_URL to an empty PostgreSQL database the tests may use"
	cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
	[ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters)"
	# shellcheck disable=SC2086
	if ! pg_lsclusters --no-header | awk 'NR==1 {print $4}' | grep -q online; then
		log "starting PostgreSQL cluster $cluster"
		pg_ctlcluster $cluster start >&2
	fi
	for _ in $(seq 1 30); do
		su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
		sleep 1
	done
	if [ "$(su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='aicode'\"")" != 1 ]; then
		su postgres -c "psql -qc \"create role aicode login superuser password 'aicode'\"" >&2
	fi
	if [ "$(su postgres -c "psql -qtAc \"select 1 from pg_database where datname='aicode_test'\"")" != 1 ]; then
		su postgres -c "createdb -O aicode aicode_test" >&2
	fi
fi
log "postgres: ${pg_url%%@*}@… (password hidden)"

# --- The default workspace image (built offline: no registry needed) ---------
image="${AICODE_TEST_WORKSPACE_IMAGE:-aicode-workspace:latest}"
if [ -z "${AICODE_TEST_WORKSPACE_IMAGE:-}" ]; then
	if $can_install; then
		command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
		log "workspace image: making sure $image is built and current"
		"$root/docker/workspace/build-offline.sh" "$image" >&2
	elif ! docker image inspect "$image" >/dev/null 2>&1; then
		die "the workspace image $image is missing; build it with 'make workspace-image' (or 'sudo make workspace-image-offline')"
	fi
fi

printf 'export AICODE_TEST_POSTGRES_URL=%q\n' "$pg_url"
printf 'export AICODE_TEST_CHROME=%q\n' "$chrome"
printf 'export AICODE_TEST_WORKSPACE_IMAGE=%q\n' "$image"
