# shellcheck shell=bash
# Shared by the MySQL image's entrypoints, sourced after lib.sh: the client option file that
# carries a password (never argv or env), TLS as DB_SSL_MODE asks, SQL quoting, and running SQL
# without a password reaching the log.
#
#   # shellcheck source=../lib/db-operator/mysql.sh
#   . /usr/local/lib/db-operator/mysql.sh

# The image's client is MariaDB's; it reads this CA bundle to verify server certificates.
readonly system_ca_bundle=/etc/ssl/certs/ca-certificates.crt

# A value for a MySQL option file: double-quoted, so '#', ';', quotes and spaces survive, with
# \ and " escaped as the option-file parser expects.
option_value() {
	local v=${1//\\/\\\\}
	v=${v//\"/\\\"}
	printf '"%s"' "$v"
}

# Writes the private option file $1 for user $2 with the password read from file $3 ($4 names
# it in messages): address, TCP (so "localhost" is not a socket path), TLS. Every client then
# runs as `tool --defaults-extra-file=$1 ...`, which must be its first argument.
write_client_options() {
	local file=$1 user=$2 password
	password=$(read_secret_file "$3" "$4")
	(
		umask 077
		{
			printf '[client]\n'
			printf 'user=%s\n' "$(option_value "$user")"
			printf 'password=%s\n' "$(option_value "$password")"
			printf 'host=%s\n' "$(option_value "$DB_HOST")"
			printf 'port=%s\n' "$DB_PORT"
			printf 'protocol=TCP\n'
			tls_options
		} >"$file"
	)
}

# DB_SSL_MODE (MySQL's --ssl-mode words) for the MariaDB client, which has no such option.
tls_options() {
	case $DB_SSL_MODE in
	DISABLED) printf 'skip-ssl\n' ;;
	# `ssl` alone is TLS when the server offers it, plain text otherwise; REQUIRED is enforced
	# by require_tls.
	PREFERRED | REQUIRED) printf 'ssl\n' ;;
	VERIFY_IDENTITY)
		[[ -r $system_ca_bundle ]] ||
			die "DB_SSL_MODE=VERIFY_IDENTITY needs the CA bundle $system_ca_bundle, which this image lacks"
		printf 'ssl\nssl-verify-server-cert\nssl-ca=%s\n' "$system_ca_bundle"
		;;
	*) die "DB_SSL_MODE must be one of DISABLED, PREFERRED, REQUIRED, VERIFY_IDENTITY, got '$DB_SSL_MODE'" ;;
	esac
}

# With DB_SSL_MODE=REQUIRED, fails unless a connection with option file $1 negotiates TLS. (The
# MariaDB client falls back to plain text by itself; VERIFY_IDENTITY never does.)
require_tls() {
	[[ $DB_SSL_MODE == REQUIRED ]] || return 0
	local status
	status=$(mariadb --defaults-extra-file="$1" --batch --skip-column-names --connect-timeout=30 \
		--execute="SHOW SESSION STATUS LIKE 'Ssl_cipher'") ||
		die "cannot connect to $DB_HOST:$DB_PORT; the client's error is above"
	status=${status#Ssl_cipher}
	[[ -n ${status//[[:space:]]/} ]] ||
		die "DB_SSL_MODE=REQUIRED, but $DB_HOST:$DB_PORT did not negotiate TLS; enable TLS on the server, or set the DbInstance's spec.options.sslMode"
}

# A MySQL string literal, for a session whose sql_mode lacks NO_BACKSLASH_ESCAPES.
sql_string() {
	local v=${1//\\/\\\\}
	v=${v//\'/\\\'}
	printf "'%s'" "$v"
}

# A MySQL identifier: backticks, with ` doubled.
sql_identifier() {
	printf '`%s`' "${1//\`/\`\`}"
}

# Runs the SQL on stdin with option file $1 and prints the rows (tab-separated). The server's
# errors may quote the failing statement, so they are shown with the secret $2 (if any, raw or
# as sql_string escapes it) masked.
run_sql() {
	local options=$1 secret=${2:-} status=0 errors escaped
	mariadb --defaults-extra-file="$options" --batch --skip-column-names \
		--skip-print-query-on-error --connect-timeout=30 2>"$work/sql.err" || status=$?
	if ((status != 0)); then
		errors=$(<"$work/sql.err")
		if [[ -n $secret ]]; then
			escaped=$(sql_string "$secret")
			escaped=${escaped:1:${#escaped}-2}
			errors=${errors//"$escaped"/<password>}
			errors=${errors//"$secret"/<password>}
		fi
		printf '%s\n' "$errors" >&2
	fi
	rm -f "$work/sql.err"
	return "$status"
}
