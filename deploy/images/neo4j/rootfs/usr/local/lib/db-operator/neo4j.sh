# shellcheck shell=bash
# Neo4j functions of the neo4j-tools entrypoints, sourced after lib.sh. Cypher text is built only
# from values quoted here, and passwords reach cypher-shell through its environment or its
# stdin, never through its argv.

# A Cypher identifier: in backticks, with every backtick doubled.
cypher_name() {
	printf '`%s`' "${1//\`/\`\`}"
}

# A Cypher string literal: in single quotes, with backslashes and single quotes escaped.
cypher_string() {
	local v=${1//\\/\\\\}
	v=${v//\'/\\\'}
	printf "'%s'" "$v"
}

# Runs cypher-shell against DB_ADDRESS as user $1 with password $2 on database $3; the
# statements come from stdin, or from the remaining arguments. The password is in the
# environment of this one process only (cypher-shell reads NEO4J_PASSWORD).
cypher_as() {
	local user=$1 password=$2 database=$3
	shift 3
	NEO4J_PASSWORD=$password cypher-shell --address "$DB_ADDRESS" --username "$user" \
		--database "$database" --format plain --non-interactive "$@"
}

# Checks that $1 (named by variable $2 in messages) is a database name db-operator can have
# rendered: Neo4j's rules, so that a hand-written pod spec fails here and not in Cypher.
require_database_name() {
	[[ $1 =~ ^[a-z][a-z0-9.-]{2,62}$ && $1 != system* ]] ||
		die "$2 must be a Neo4j database name (3 to 63 of a-z, 0-9, . and -, starting with a letter, not system), got '$1'"
}

require_user_name() {
	[[ $1 =~ ^[A-Za-z][A-Za-z0-9_]*$ ]] ||
		die "$2 must be a Neo4j user name (letters, digits and _, starting with a letter), got '$1'"
}
