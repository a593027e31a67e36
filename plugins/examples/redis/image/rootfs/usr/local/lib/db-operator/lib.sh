# shellcheck shell=bash
# Shared by the entrypoints of every db-operator engine image: messages, checks, the termination
# report, and the S3 object layout of backups. Sourced, never run:
#
#   # shellcheck source=../lib/db-operator/lib.sh
#   . /usr/local/lib/db-operator/lib.sh
#
# The caller runs under `set -euo pipefail`. Object layout, one folder per Database:
#   <BACKUP_PREFIX>/<BACKUP_NAME>/<BACKUP_NAME>-<UTC YYYYmmddTHHMMSSZ><ext>
#   <BACKUP_PREFIX>/<BACKUP_NAME>/<BACKUP_NAME>-latest<ext>   copy of the newest successful one
# The rclone remote `s3` comes from the image's rclone.conf and RCLONE_CONFIG_S3_* env vars.

readonly prog=${0##*/}
readonly remote=s3

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

require_env() {
	local name missing=()
	for name in "$@"; do
		if [[ -z ${!name:-} ]]; then missing+=("$name"); fi
	done
	if ((${#missing[@]} > 0)); then
		die "missing environment variable(s): ${missing[*]}; the pod spec rendered by db-operator sets them"
	fi
}

require_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || die "$tool is not installed in this image"
	done
}

require_port() {
	[[ ${!1:-} =~ ^[0-9]+$ ]] || die "$1 must be a port number, got '${!1:-}'"
}

# The content of a one-line secret file (a password), checked for what tools cannot take.
read_secret_file() {
	local file=$1 what=$2 value
	[[ -r $file ]] || die "cannot read the $what file $file; is its Secret mounted?"
	value=$(<"$file")
	[[ -n $value ]] || die "the $what file $file is empty"
	[[ $value != *$'\n'* ]] || die "the $what in $file contains a line break"
	printf '%s' "$value"
}

json_string() {
	local v=${1//\\/\\\\}
	v=${v//\"/\\\"}
	v=${v//$'\n'/\\n}
	printf '"%s"' "$v"
}

# Kubernetes shows this file's content as the container's termination message.
report() {
	if [[ -w /dev/termination-log ]]; then
		printf '%s\n' "$1" >/dev/termination-log || true
	fi
}

# A private scratch folder ($work), removed on exit; on a failed exit the object named by
# $incomplete is deleted first, since a half-written backup looks like a backup but is not one.
work=""
incomplete=""
start_work() {
	work=$(mktemp -d)
	trap cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
}

cleanup() {
	local status=$?
	if [[ $status -ne 0 && -n $incomplete ]]; then
		remove_incomplete "$incomplete"
	fi
	[[ -z $work ]] || rm -rf "$work"
	exit "$status"
}

remove_incomplete() {
	local key=$1 listed
	if ! listed=$(rclone lsf "$remote:$BACKUP_BUCKET/$key" 2>/dev/null); then
		log "could not check whether s3://$BACKUP_BUCKET/$key was left behind; if it exists, delete it, it is not a usable backup"
	elif [[ -n $listed ]]; then
		log "removing the incomplete backup s3://$BACKUP_BUCKET/$key"
		rclone deletefile "$remote:$BACKUP_BUCKET/$key" ||
			log "could not remove s3://$BACKUP_BUCKET/$key; delete it by hand, it is not a usable backup"
	fi
}

# The folder of BACKUP_NAME's backups, relative to the bucket.
backup_dir() {
	[[ $BACKUP_NAME != */* ]] || die "BACKUP_NAME must not contain '/', got '$BACKUP_NAME'"
	printf '%s\n' "${BACKUP_PREFIX:+${BACKUP_PREFIX%/}/}$BACKUP_NAME"
}

# Streams the stdout of "$@" (a dump command) to the object $1 without staging it on disk.
# $2 names the dump tool in messages. Sets $incomplete while the object may be partial.
stream_to_s3() {
	local key=$1 what=$2 status
	shift 2
	incomplete=$key
	set +e
	"$@" | rclone rcat "$remote:$BACKUP_BUCKET/$key"
	status=("${PIPESTATUS[@]}")
	set -e
	# A failed upload also kills the dump (SIGPIPE), so the upload's status is the first suspect.
	if ((status[1] != 0)); then
		die "uploading to s3://$BACKUP_BUCKET/$key failed (rclone exit ${status[1]}); check the bucket, region/endpoint and S3 credentials"
	fi
	if ((status[0] != 0)); then
		die "$what failed (exit ${status[0]}); its error is above"
	fi
}

# Uploads the file $2 to the object $1 (for dumps a tool can only write to a file).
upload_file() {
	local key=$1 file=$2
	incomplete=$key
	rclone copyto "$file" "$remote:$BACKUP_BUCKET/$key" ||
		die "uploading to s3://$BACKUP_BUCKET/$key failed; check the bucket, region/endpoint and S3 credentials"
}

# After a complete upload of $1: checks the object is there and not empty, copies it
# (server-side) to $2, and writes the termination report. `latest` moves only here.
promote_latest() {
	local key=$1 latest=$2 stamp=$3 size
	size=$(rclone lsf --format s "$remote:$BACKUP_BUCKET/$key") ||
		die "the upload of s3://$BACKUP_BUCKET/$key reported success but the object cannot be listed"
	[[ $size =~ ^[0-9]+$ && $size -gt 0 ]] ||
		die "s3://$BACKUP_BUCKET/$key is empty or missing after the upload (size '$size')"
	incomplete=""
	rclone copyto "$remote:$BACKUP_BUCKET/$key" "$remote:$BACKUP_BUCKET/$latest" ||
		die "the backup is stored as s3://$BACKUP_BUCKET/$key, but updating $latest failed"
	log "stored s3://$BACKUP_BUCKET/$key ($size bytes) and updated $latest"
	report "{\"key\":$(json_string "$key"),\"latestKey\":$(json_string "$latest"),\"size\":$size,\"time\":\"$stamp\"}"
}

# The object key a restore reads, from exactly one of SNAPSHOT_KEY, SNAPSHOT_LATEST=true and
# SNAPSHOT_POINT_IN_TIME (the newest <BACKUP_NAME>-<stamp>$1 at or before it).
snapshot_key() {
	local ext=$1 selected=0 name dir
	for name in SNAPSHOT_KEY SNAPSHOT_LATEST SNAPSHOT_POINT_IN_TIME; do
		if [[ -n ${!name:-} ]]; then selected=$((selected + 1)); fi
	done
	((selected == 1)) ||
		die "set exactly one of SNAPSHOT_KEY, SNAPSHOT_LATEST=true, SNAPSHOT_POINT_IN_TIME (got $selected)"
	dir=$(backup_dir)
	if [[ -n ${SNAPSHOT_KEY:-} ]]; then
		printf '%s\n' "${SNAPSHOT_KEY#/}"
	elif [[ -n ${SNAPSHOT_LATEST:-} ]]; then
		[[ $SNAPSHOT_LATEST == true ]] || die "SNAPSHOT_LATEST must be 'true', got '$SNAPSHOT_LATEST'"
		printf '%s\n' "$dir/$BACKUP_NAME-latest$ext"
	else
		newest_at_or_before "$SNAPSHOT_POINT_IN_TIME" "$dir" "$ext"
	fi
}

newest_at_or_before() {
	local when=$1 dir=$2 ext=$3 cutoff listing file stamp best=""
	cutoff=$(date -u -d "$when" +%Y%m%dT%H%M%SZ 2>/dev/null) ||
		die "SNAPSHOT_POINT_IN_TIME '$when' is not a time; use RFC 3339, e.g. 2024-05-01T08:00:00Z"
	listing=$(rclone lsf --files-only "$remote:$BACKUP_BUCKET/$dir/") ||
		die "cannot list s3://$BACKUP_BUCKET/$dir/; check the bucket, region/endpoint and S3 credentials"
	while IFS= read -r file; do
		[[ $file == "$BACKUP_NAME-"*"$ext" ]] || continue
		stamp=${file#"$BACKUP_NAME-"}
		stamp=${stamp%"$ext"}
		# Also skips the -latest copy, which has no time in its name.
		[[ $stamp =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || continue
		[[ $stamp > $cutoff ]] && continue
		if [[ -z $best || $stamp > $best ]]; then best=$stamp; fi
	done <<<"$listing"
	[[ -n $best ]] ||
		die "no backup of '$BACKUP_NAME' taken at or before $when ($cutoff) in s3://$BACKUP_BUCKET/$dir/; choose a later time or a key"
	printf '%s\n' "$dir/$BACKUP_NAME-$best$ext"
}

# The size of object $1 in bytes; fails naming the object when it does not exist.
object_size() {
	local key=$1 size
	size=$(rclone lsf --format s "$remote:$BACKUP_BUCKET/$key" 2>"$work/lsf.err") || {
		cat "$work/lsf.err" >&2
		die "cannot look up s3://$BACKUP_BUCKET/$key; check the bucket, region/endpoint and S3 credentials"
	}
	[[ -n $size ]] || die "there is no backup s3://$BACKUP_BUCKET/$key"
	printf '%s\n' "$size"
}

# Streams object $1 into the stdin of "$@" (a restore command); $2 names it in messages.
stream_from_s3() {
	local key=$1 what=$2 status
	shift 2
	set +e
	rclone cat "$remote:$BACKUP_BUCKET/$key" 2>"$work/cat.err" | "$@"
	status=("${PIPESTATUS[@]}")
	set -e
	if ((status[0] != 0 && status[0] != 141)); then
		cat "$work/cat.err" >&2
		die "downloading s3://$BACKUP_BUCKET/$key failed (rclone exit ${status[0]})"
	fi
	if ((status[1] != 0)); then
		die "$what failed (exit ${status[1]}); its error is above"
	fi
}
