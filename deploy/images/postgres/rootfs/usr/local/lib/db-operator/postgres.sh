# shellcheck shell=bash
# PostgreSQL parts of the entrypoints, sourced after lib.sh.

# A libpq connection-string value: single-quoted, with \ and ' escaped. Passing names this
# way keeps a database name containing '=' from being read as a connection string.
conninfo_value() {
	local v=${1//\\/\\\\}
	v=${v//\'/\\\'}
	printf "'%s'" "$v"
}

# Gives libpq the password through a private pgpass file in $work, so it never appears in argv
# or in the environment of the tools.
use_password_file() {
	local file=$1 what=$2 password
	password=$(read_secret_file "$file" "$what password")
	password=${password//\\/\\\\}
	password=${password//:/\\:}
	(
		umask 077
		printf '*:*:*:*:%s\n' "$password" >"$work/pgpass"
	)
	export PGPASSFILE=$work/pgpass
}
