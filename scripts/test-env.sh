#!/usr/bin/env bash
# Prepares everything the test suite needs and prints the environment for
# it as `export` lines (progress goes to stderr), so `make test` can do
#   eval "$(scripts/test-env.sh)" && go test ./...
#
# Needs: a Docker engine, PostgreSQL, Redis, MinIO, Chromium, busybox-static, wrk (for
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

# --- nginx (deploy/ runs the compose stack's nginx configuration) ------------
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
	apt_install nginx-light
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

# --- Redis (cross-replica bus, shared rate limits) ----------------------------
# The shared instance listens on loopback only; fault tests start their own
# redis-server from the same binary so they can stop it.
redis_url="${AICODE_TEST_REDIS_URL:-}"
redis_bin=$(command -v redis-server || true)
if [ -z "$redis_url" ]; then
	if [ -z "$redis_bin" ]; then
		apt_install redis-server
		redis_bin=$(command -v redis-server)
	fi
	redis_url="redis://127.0.0.1:6390/0"
	if ! redis-cli -p 6390 ping >/dev/null 2>&1; then
		log "starting redis-server on 127.0.0.1:6390"
		"$redis_bin" --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
			--logfile /var/log/aicode-redis.log >&2
		for _ in $(seq 1 30); do
			redis-cli -p 6390 ping >/dev/null 2>&1 && break
			sleep 0.2
		done
		redis-cli -p 6390 ping >/dev/null 2>&1 || die "redis did not come up; see /var/log/aicode-redis.log"
	fi
fi
log "redis: $redis_url"

# --- MinIO (object store) ------------------------------------------------------
command -v curl >/dev/null 2>&1 || apt_install curl
# Built from source with the Go toolchain (no other download site is
# reachable); the binary stays in $(go env GOPATH)/bin between runs.
minio_url="${AICODE_TEST_MINIO_URL:-}"
minio_bin="${AICODE_TEST_MINIO_BIN:-$(go env GOPATH)/bin/minio}"
if [ ! -x "$minio_bin" ]; then
	log "building MinIO (go install github.com/minio/minio@latest; a few minutes, once)"
	go install github.com/minio/minio@latest >&2
fi
if [ -z "$minio_url" ]; then
	minio_url="http://aicode:aicode-minio-secret@127.0.0.1:9100"
	if ! curl -fsS -o /dev/null http://127.0.0.1:9100/minio/health/live 2>/dev/null; then
		log "starting MinIO on 127.0.0.1:9100"
		mkdir -p /var/lib/aicode-minio
		MINIO_ROOT_USER=aicode MINIO_ROOT_PASSWORD=aicode-minio-secret MINIO_BROWSER=off \
			nohup "$minio_bin" server /var/lib/aicode-minio --address 127.0.0.1:9100 --console-address 127.0.0.1:9101 \
			>/var/log/aicode-minio.log 2>&1 &
		for _ in $(seq 1 60); do
			curl -fsS -o /dev/null http://127.0.0.1:9100/minio/health/live 2>/dev/null && break
			sleep 0.5
		done
		curl -fsS -o /dev/null http://127.0.0.1:9100/minio/health/live || die "MinIO did not come up; see /var/log/aicode-minio.log"
	fi
fi
log "minio: ${minio_url%%:*}://…@${minio_url##*@} (credentials hidden)"

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
printf 'export AICODE_TEST_REDIS_URL=%q\n' "$redis_url"
printf 'export AICODE_TEST_REDIS_SERVER=%q\n' "$redis_bin"
printf 'export AICODE_TEST_MINIO_URL=%q\n' "$minio_url"
printf 'export AICODE_TEST_MINIO_BIN=%q\n' "$minio_bin"
