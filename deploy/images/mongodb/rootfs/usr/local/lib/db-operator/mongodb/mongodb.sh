# shellcheck shell=bash
# MongoDB helpers of the mongodb-tools entrypoints, sourced after the shared lib.sh. They build
# connection strings without credentials (those go to argv and the environment) and hand
# passwords to the tools only through files:
#   - mongodump/mongorestore: `--config <file>` whose YAML holds `password:` (mongodb-database-tools
#     100.x read `password`, `uri` and `sslPEMKeyPassword` from it);
#   - mongosh: the JavaScript under this folder reads the password file itself (fs.readFileSync)
#     and puts it into the connection string in memory.

readonly mongodb_js=/usr/local/lib/db-operator/mongodb

# Fails unless the connection env is what the engine renders: one host, a port, and plain
# connection-string options, so a hand-edited pod spec cannot smuggle hosts or credentials in.
check_connection_env() {
	require_port DB_PORT
	[[ $DB_HOST =~ ^[A-Za-z0-9._-]+$ || $DB_HOST =~ ^\[[0-9A-Fa-f:.]+\]$ ]] ||
		die "DB_HOST must be one host name or IP address (IPv6 in brackets), got '$DB_HOST'"
	local option='[A-Za-z]+=[A-Za-z0-9._/-]+'
	[[ ${MONGO_URI_OPTIONS:-} =~ ^($option(&$option)*)?$ ]] ||
		die "MONGO_URI_OPTIONS must be connection-string options like tls=true&replicaSet=rs0, got '${MONGO_URI_OPTIONS:-}'"
}

# $1 with every byte outside the URI's unreserved characters percent-encoded.
uri_encode() {
	local LC_ALL=C value=$1 out="" c i
	for ((i = 0; i < ${#value}; i++)); do
		c=${value:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*)
			printf -v c '%%%02X' "'$c"
			out+=$c
			;;
		esac
	done
	printf '%s' "$out"
}

# The connection string of DB_HOST:DB_PORT for a user defined in database $1, without
# credentials: mongodb://host:port/?authSource=<$1>[&MONGO_URI_OPTIONS].
server_uri() {
	printf 'mongodb://%s:%s/?authSource=%s%s\n' "$DB_HOST" "$DB_PORT" "$(uri_encode "$1")" \
		"${MONGO_URI_OPTIONS:+&$MONGO_URI_OPTIONS}"
}

# Writes the mongodb-database-tools config file (mode 0600, in $work) with the password from
# file $1 ($2 names it in messages) and prints its path.
tools_config() {
	# shellcheck disable=SC2154 # $work is lib.sh's, set by start_work
	local file=$1 what=$2 password config=$work/mongo-tools.yaml
	password=$(read_secret_file "$file" "$what")
	# A YAML single-quoted scalar: only ' needs escaping, by doubling it.
	password=${password//\'/\'\'}
	(
		umask 077
		printf "password: '%s'\n" "$password" >"$config"
	)
	printf '%s\n' "$config"
}

# Runs the mongosh script $mongodb_js/$1 without a default connection, profile or rc file;
# the script connects itself from the DBO_* variables of its caller.
run_mongosh() {
	mongosh --nodb --norc --quiet --file "$mongodb_js/$1"
}
