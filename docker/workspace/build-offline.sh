#!/usr/bin/env bash
# Build the default AICode workspace image without a container registry:
# debootstrap a Debian rootfs, add the `dev` user and the Claude Code CLI, and
# `docker import` it with the same configuration as ./Dockerfile.
#
# The package list and the default Claude Code version are read from
# ./Dockerfile (ARG WORKSPACE_PACKAGES / ARG CLAUDE_VERSION), so both ways of
# building stay in step. Run with --help for the options.
set -Eeuo pipefail

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
HERE="$(dirname "$SCRIPT_PATH")"
DOCKERFILE="$HERE/Dockerfile"
CLAUDE_PKG="@anthropic-ai/claude-code-linux-x64"
IMAGE_PATH_ENV="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

TAG="${AICODE_WORKSPACE_IMAGE:-aicode-workspace:latest}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${DEBIAN_SUITE:-bookworm}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR-__derive__}"
UPDATES="${DEBIAN_UPDATES:-1}"
CLAUDE_VERSION="${CLAUDE_VERSION:-}"
CLAUDE_TARBALL="${CLAUDE_TARBALL:-}"
NPM_REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
FORCE=0

usage() {
	cat <<EOF
Usage: $(basename "$0") [options] [TAG]

Builds the AICode workspace image (default tag: aicode-workspace:latest) from
Debian packages, without any container registry. Must run as root.

Options (environment variable in brackets):
  -t, --tag TAG            image tag [AICODE_WORKSPACE_IMAGE]
  -m, --mirror URL         Debian mirror [DEBIAN_MIRROR], default
                           http://deb.debian.org/debian
  -s, --suite SUITE        Debian suite [DEBIAN_SUITE], default bookworm
      --security-mirror URL
                           Debian security mirror [DEBIAN_SECURITY_MIRROR];
                           default: the mirror URL with /debian replaced by
                           /debian-security; '' skips security updates
      --no-updates         install the suite as released, without
                           SUITE-updates and security updates [DEBIAN_UPDATES=0]
  -c, --claude-version V   version of $CLAUDE_PKG
                           [CLAUDE_VERSION], default: ARG CLAUDE_VERSION in
                           the Dockerfile
      --claude-tarball F   use this local npm tarball instead of fetching one
                           (air-gapped hosts) [CLAUDE_TARBALL]
      --npm-registry URL   npm registry [NPM_REGISTRY], default
                           https://registry.npmjs.org
  -f, --force              rebuild even if TAG is already up to date
  -h, --help               show this help

An image is up to date when its io.aicode.build-hash label equals the sha256
of this script, the Dockerfile, the suite, the Claude Code version and the
updates setting. Use --force to pick up newer Debian packages.
EOF
}

STEP="start-up"
log() { printf '==> [%02d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
warn() { printf 'build-offline: warning: %s\n' "$*" >&2; }
die() {
	printf 'build-offline: error: %s\n' "$*" >&2
	exit 1
}

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }

while (($#)); do
	case "$1" in
	-t | --tag) need_value "$@"; TAG="$2"; shift ;;
	--tag=*) TAG="${1#*=}" ;;
	-m | --mirror) need_value "$@"; MIRROR="$2"; shift ;;
	--mirror=*) MIRROR="${1#*=}" ;;
	-s | --suite) need_value "$@"; SUITE="$2"; shift ;;
	--suite=*) SUITE="${1#*=}" ;;
	--security-mirror) [[ $# -ge 2 ]] || die "$1 needs a value"; SECURITY_MIRROR="$2"; shift ;;
	--security-mirror=*) SECURITY_MIRROR="${1#*=}" ;;
	--no-updates) UPDATES=0 ;;
	-c | --claude-version) need_value "$@"; CLAUDE_VERSION="$2"; shift ;;
	--claude-version=*) CLAUDE_VERSION="${1#*=}" ;;
	--claude-tarball) need_value "$@"; CLAUDE_TARBALL="$2"; shift ;;
	--claude-tarball=*) CLAUDE_TARBALL="${1#*=}" ;;
	--npm-registry) need_value "$@"; NPM_REGISTRY="$2"; shift ;;
	--npm-registry=*) NPM_REGISTRY="${1#*=}" ;;
	-f | --force) FORCE=1 ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) TAG="$1" ;;
	esac
	shift
done

# ---------------------------------------------------------------- checks ---

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot and mount need it), e.g. sudo $0"

[[ -r $DOCKERFILE ]] || die "$DOCKERFILE not found: it holds the package list and is part of the build hash"
PACKAGES="$(sed -n 's/^ARG WORKSPACE_PACKAGES="\([^"]*\)"[[:space:]]*$/\1/p' "$DOCKERFILE")"
[[ -n $PACKAGES ]] || die "no one-line ARG WORKSPACE_PACKAGES=\"...\" in $DOCKERFILE"
if [[ -z $CLAUDE_VERSION ]]; then
	CLAUDE_VERSION="$(sed -n 's/^ARG CLAUDE_VERSION=\([^[:space:]]*\)[[:space:]]*$/\1/p' "$DOCKERFILE")"
	[[ -n $CLAUDE_VERSION ]] || die "no ARG CLAUDE_VERSION=... in $DOCKERFILE; pass --claude-version"
fi
[[ $CLAUDE_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] ||
	die "claude version '$CLAUDE_VERSION' is not a plain x.y.z version"
[[ $SUITE =~ ^[a-z0-9-]+$ ]] || die "bad suite name '$SUITE'"
[[ $UPDATES == 0 || $UPDATES == 1 ]] || die "DEBIAN_UPDATES must be 0 or 1"
MIRROR="${MIRROR%/}"
NPM_REGISTRY="${NPM_REGISTRY%/}"
if [[ $SECURITY_MIRROR == __derive__ ]]; then
	if [[ $MIRROR == */debian ]]; then
		SECURITY_MIRROR="${MIRROR%/debian}/debian-security"
	else
		SECURITY_MIRROR=""
		[[ $UPDATES == 0 ]] || warn "cannot derive a security mirror from $MIRROR; pass --security-mirror to get security updates"
	fi
fi
SECURITY_MIRROR="${SECURITY_MIRROR%/}"
if [[ -n $CLAUDE_TARBALL ]]; then
	[[ -r $CLAUDE_TARBALL ]] || die "claude tarball $CLAUDE_TARBALL is not readable"
	CLAUDE_TARBALL="$(readlink -f "$CLAUDE_TARBALL")"
fi

for cmd in debootstrap docker tar chroot mount umount sha256sum sha512sum mktemp awk; do
	command -v "$cmd" >/dev/null || die "'$cmd' is not installed (Debian: apt-get install debootstrap docker.io coreutils tar mount)"
done
if [[ -z $CLAUDE_TARBALL ]] && ! command -v npm >/dev/null && ! command -v curl >/dev/null; then
	die "need npm or curl to fetch $CLAUDE_PKG, or pass --claude-tarball"
fi
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is dockerd running? docker info says: $(docker info 2>&1 | tail -n 1))"

BUILD_HASH="$(
	{
		cat "$SCRIPT_PATH" "$DOCKERFILE"
		printf 'suite=%s\nclaude=%s\nupdates=%s\nsecurity=%s\n' \
			"$SUITE" "$CLAUDE_VERSION" "$UPDATES" "${SECURITY_MIRROR:+yes}"
	} | sha256sum | cut -d' ' -f1
)"

# One build at a time on this host; a second one waits, then finds the image up to date.
if command -v flock >/dev/null && [[ -d /run ]]; then
	exec 9>"/run/aicode-workspace-build.lock"
	if ! flock -n 9; then
		log "another build-offline.sh is running; waiting for it to finish"
		flock 9
	fi
fi

current_hash="$(docker image inspect --format '{{ index .Config.Labels "io.aicode.build-hash" }}' "$TAG" 2>/dev/null || true)"
if [[ $current_hash == "$BUILD_HASH" && $FORCE -eq 0 ]]; then
	log "$TAG is up to date (io.aicode.build-hash=$BUILD_HASH); nothing to do (use --force to rebuild)"
	exit 0
fi

# ------------------------------------------------------- work dir + traps ---

WORK=""
ROOTFS=""
IMPORTED_ID=""
TAGGED=0

mounts_under() {
	awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts | sort -r
}

unmount_all() {
	[[ -n $ROOTFS ]] || return 0
	local m
	for m in $(mounts_under "$ROOTFS"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || warn "could not unmount $m"
	done
}

on_exit() {
	local rc=$?
	set +e
	trap - ERR
	unmount_all
	if [[ -n $WORK && -d $WORK ]]; then
		if [[ -n $(mounts_under "$WORK") ]]; then
			warn "not removing $WORK: something is still mounted under it"
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
	if [[ -n $IMPORTED_ID && $TAGGED -eq 0 ]]; then
		docker image rm "$IMPORTED_ID" >/dev/null 2>&1
	fi
	if ((rc != 0)); then
		printf 'build-offline: FAILED while: %s (exit status %d); %s was not changed\n' "$STEP" "$rc" "$TAG" >&2
	fi
	exit "$rc"
}

on_err() {
	printf 'build-offline: command failed (status %d) at line %d: %s\n' "$1" "$2" "$3" >&2
}

trap on_exit EXIT
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/aicode-workspace.XXXXXX")"
ROOTFS="$WORK/rootfs"
mkdir "$ROOTFS"

in_root() {
	chroot "$ROOTFS" /usr/bin/env -i PATH="$IMAGE_PATH_ENV" HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

log "building $TAG: Debian $SUITE from $MIRROR, Claude Code $CLAUDE_VERSION"
log "packages: $PACKAGES"
log "build hash $BUILD_HASH; work dir $WORK"

# ------------------------------------------------- fetch the claude CLI ---

STEP="fetching $CLAUDE_PKG@$CLAUDE_VERSION"
log "[1/7] $STEP"
mkdir "$WORK/claude"
tarball="$WORK/claude/claude.tgz"
if [[ -n $CLAUDE_TARBALL ]]; then
	log "using local tarball $CLAUDE_TARBALL"
	cp "$CLAUDE_TARBALL" "$tarball"
elif command -v npm >/dev/null; then
	(
		cd "$WORK/claude"
		NO_UPDATE_NOTIFIER=1 npm pack --loglevel=error --cache "$WORK/npm-cache" \
			--registry "$NPM_REGISTRY/" "$CLAUDE_PKG@$CLAUDE_VERSION" >/dev/null
	) || die "npm pack $CLAUDE_PKG@$CLAUDE_VERSION failed (is $NPM_REGISTRY reachable, does the version exist?)"
	shopt -s nullglob
	packed=("$WORK"/claude/*.tgz)
	shopt -u nullglob
	((${#packed[@]} == 1)) || die "npm pack did not leave exactly one tarball in $WORK/claude"
	mv "${packed[0]}" "$tarball"
else
	meta="$(curl -fsSL "$NPM_REGISTRY/$CLAUDE_PKG/$CLAUDE_VERSION")" ||
		die "cannot read $CLAUDE_PKG@$CLAUDE_VERSION from $NPM_REGISTRY"
	integrity="$(printf '%s' "$meta" | sed -n 's/.*"integrity" *: *"\(sha512-[^"]*\)".*/\1/p')"
	[[ -n $integrity ]] || die "no sha512 integrity in the registry metadata of $CLAUDE_PKG@$CLAUDE_VERSION"
	curl -fSL --progress-bar -o "$tarball" \
		"$NPM_REGISTRY/$CLAUDE_PKG/-/claude-code-linux-x64-$CLAUDE_VERSION.tgz" ||
		die "download of $CLAUDE_PKG@$CLAUDE_VERSION failed"
	want="$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
	got="$(sha512sum "$tarball" | cut -d' ' -f1)"
	[[ $want == "$got" ]] || die "sha512 of the downloaded tarball does not match the registry's integrity"
fi
rm -rf "$WORK/npm-cache"
log "tarball sha256 $(sha256sum "$tarball" | cut -d' ' -f1)"

tar -xzf "$tarball" -C "$WORK/claude" package/claude package/package.json ||
	die "$tarball has no package/claude: not a $CLAUDE_PKG tarball?"
pkg_version="$(sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p' "$WORK/claude/package/package.json" | head -n 1)"
[[ $pkg_version == "$CLAUDE_VERSION" ]] ||
	die "the tarball holds $CLAUDE_PKG version '$pkg_version', not $CLAUDE_VERSION"
rm -f "$tarball"

# ------------------------------------------------------------ debootstrap ---

STEP="debootstrap of $SUITE from $MIRROR"
log "[2/7] $STEP (a few minutes)"
if ! debootstrap --variant=minbase --components=main --include="${PACKAGES// /,}" \
	"$SUITE" "$ROOTFS" "$MIRROR"; then
	if [[ -f $ROOTFS/debootstrap/debootstrap.log ]]; then
		printf -- '--- last lines of debootstrap.log ---\n' >&2
		tail -n 25 "$ROOTFS/debootstrap/debootstrap.log" >&2
	fi
	die "debootstrap failed: check the mirror ($MIRROR), the suite ($SUITE) and that every package in WORKSPACE_PACKAGES exists there"
fi

# ------------------------------------------------------ updates, dev user ---

STEP="configuring the rootfs"
log "[3/7] $STEP"
mount -t proc proc "$ROOTFS/proc"
if [[ ! -c $ROOTFS/dev/null ]]; then
	mount --bind /dev "$ROOTFS/dev"
fi
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"

{
	echo "deb $MIRROR $SUITE main"
	if [[ $UPDATES == 1 ]]; then
		echo "deb $MIRROR $SUITE-updates main"
		[[ -z $SECURITY_MIRROR ]] || echo "deb $SECURITY_MIRROR $SUITE-security main"
	fi
} >"$ROOTFS/etc/apt/sources.list"

if [[ $UPDATES == 1 ]]; then
	STEP="installing $SUITE-updates/security updates"
	log "[3/7] $STEP"
	in_root apt-get -q update
	in_root apt-get -q -y -o Dpkg::Options::=--force-confold upgrade
fi

STEP="checking the installed packages"
missing=""
for p in $PACKAGES; do
	# shellcheck disable=SC2016 # dpkg-query format, not a shell expansion
	status="$(in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
	[[ $status == "install ok installed" ]] || missing+=" $p"
done
[[ -z $missing ]] || die "packages not installed in the rootfs:$missing"

STEP="creating user dev (1000:1000)"
log "[4/7] $STEP"
if in_root getent passwd 1000 >/dev/null || in_root getent group 1000 >/dev/null; then
	die "uid or gid 1000 is already taken in the $SUITE rootfs"
fi
in_root groupadd --gid 1000 dev
in_root useradd --uid 1000 --gid 1000 --create-home --home-dir /home/dev --shell /bin/bash dev
install -d -o 1000 -g 1000 -m 0755 "$ROOTFS/workspace"

# ------------------------------------------------------------ claude CLI ---

STEP="installing the claude binary"
log "[5/7] $STEP"
install -o 0 -g 0 -m 0755 "$WORK/claude/package/claude" "$ROOTFS/usr/local/bin/claude"
rm -rf "$WORK/claude"
version_out="$(chroot --userspec=1000:1000 "$ROOTFS" /usr/bin/env -i PATH="$IMAGE_PATH_ENV" \
	HOME=/tmp LANG=C.UTF-8 DISABLE_AUTOUPDATER=1 claude --version)" ||
	die "claude --version failed inside the rootfs"
log "claude --version: $version_out"
[[ $version_out == "$CLAUDE_VERSION"* ]] || die "claude reports '$version_out', expected $CLAUDE_VERSION"

# ------------------------------------------------------------------- slim ---

STEP="slimming the rootfs"
log "[6/7] $STEP"
in_root apt-get clean
unmount_all
[[ -z $(mounts_under "$ROOTFS") ]] || die "cannot unmount everything under $ROOTFS; not touching it"
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
(
	cd "$ROOTFS"
	rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/partial/* \
		var/cache/debconf/*-old var/lib/dpkg/*-old var/cache/ldconfig/aux-cache \
		usr/share/man/* usr/share/info/* usr/share/groff/* usr/share/lintian/* usr/share/linda/* \
		tmp/* var/tmp/* root/.cache root/.bash_history debootstrap
	find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
	find usr/share/doc -mindepth 1 -depth -type d -empty -delete
	find usr/share/locale -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
	find var/log -type f -delete
	# Keep later apt installs as slim as the debian:*-slim images do.
	cat >etc/dpkg/dpkg.cfg.d/docker-slim <<-'EOF'
	path-exclude /usr/share/doc/*
	path-include /usr/share/doc/*/copyright
	path-exclude /usr/share/man/*
	path-exclude /usr/share/groff/*
	path-exclude /usr/share/info/*
	path-exclude /usr/share/lintian/*
	path-exclude /usr/share/linda/*
	path-exclude /usr/share/locale/*
	EOF
	# Docker provides /dev, /etc/hosts, /etc/hostname and /etc/resolv.conf at run time.
	find dev -xdev -mindepth 1 -delete
	: >etc/resolv.conf
	echo localhost >etc/hostname
	[[ ! -e etc/machine-id ]] || : >etc/machine-id
)
log "rootfs size: $(du -sh --one-file-system "$ROOTFS" | cut -f1)"

# ----------------------------------------------------------------- import ---

STEP="docker import"
log "[7/7] $STEP"
changes=(
	--change "USER dev"
	--change "WORKDIR /workspace"
	--change "ENV PATH=$IMAGE_PATH_ENV"
	--change "ENV HOME=/home/dev"
	--change "ENV LANG=C.UTF-8"
	--change "ENV DISABLE_AUTOUPDATER=1"
	--change "ENV DISABLE_INSTALLATION_CHECKS=1"
	--change "CMD [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM INT; sleep infinity & wait\"]"
	--change "LABEL org.opencontainers.image.title=aicode-workspace io.aicode.image=workspace io.aicode.debian-suite=$SUITE io.aicode.claude-version=$CLAUDE_VERSION io.aicode.build-hash=$BUILD_HASH"
)
IMPORTED_ID="$(tar --numeric-owner --sort=name -C "$ROOTFS" -c . |
	docker import "${changes[@]}" --message "aicode-workspace: debootstrap $SUITE + claude $CLAUDE_VERSION" -)"
[[ -n $IMPORTED_ID ]] || die "docker import printed no image id"

STEP="smoke test of the new image"
log "smoke test: run as 1000:1000 with no network"
smoke="$(docker run --rm --network none --user 1000:1000 "$IMPORTED_ID" \
	sh -c 'test "$(id -u):$(id -g)" = 1000:1000 && test -d /workspace && test -O /workspace && git --version >/dev/null && claude --version')" ||
	die "the new image failed its smoke test (uid, /workspace ownership, git or claude)"
[[ $smoke == "$CLAUDE_VERSION"* ]] || die "smoke test: claude reports '$smoke'"

STEP="tagging $TAG"
previous_id="$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)"
docker tag "$IMPORTED_ID" "$TAG"
TAGGED=1
if [[ -n $previous_id && $previous_id != "$IMPORTED_ID" ]]; then
	if docker image rm "$previous_id" >/dev/null 2>&1; then
		log "removed the previous image ${previous_id#sha256:}"
	else
		log "kept the previous image ${previous_id#sha256:} (in use by a container or tagged elsewhere)"
	fi
fi

STEP="done"
size="$(docker image inspect --format '{{.Size}}' "$TAG")"
log "built $TAG (${IMPORTED_ID#sha256:}), $((size / 1000 / 1000)) MB, in $((SECONDS / 60))m$((SECONDS % 60))s"
