# shellcheck shell=bash
# $work and $prog are lib.sh's, which every entrypoint sources first.
# shellcheck disable=SC2154
# REST calls to Elasticsearch or OpenSearch for this image's entrypoints; sourced after
# lib.sh (log, die, require_env, start_work and $work come from there). Sourced, never run.
#
# Credentials reach curl through a private config file in $work (mode 0600), never through
# argv or the environment of curl. Every request goes through `es`, which leaves the HTTP
# status in $es_status and the body in $es_body, so callers decide what a 404 means.

# Names that go into URL paths: what this engine's plugin generates, nothing that needs quoting.
readonly es_name_pattern='^[a-z0-9][a-z0-9._-]*$'

es_status=""
es_body=""
# The curl config `es` authenticates with; es_login and es_sign_with_web_identity write one.
es_config=""

# Checks what every entrypoint needs to reach the cluster.
es_require_connection() {
	require_env ES_URL ES_FLAVOR ES_INDEX_PREFIX ES_USER ES_PASSWORD_FILE
	require_tools curl jq
	[[ $ES_URL =~ ^https?://[^/?#@]+$ ]] ||
		die "ES_URL must be http(s)://<host>:<port> without path or credentials, got '$ES_URL'"
	case $ES_FLAVOR in
	elasticsearch | opensearch) ;;
	*) die "ES_FLAVOR must be elasticsearch or opensearch, got '$ES_FLAVOR'" ;;
	esac
	case ${ES_INSECURE:-false} in
	true | false) ;;
	*) die "ES_INSECURE must be true or false, got '$ES_INSECURE'" ;;
	esac
	es_require_name ES_INDEX_PREFIX
	es_require_name ES_USER
}

# Refuses a variable whose value is not a plain lower-case name.
es_require_name() {
	[[ ${!1} =~ $es_name_pattern ]] ||
		die "$1 must be a lower-case name (a-z, 0-9, ., _ and -, starting with a letter or digit), got '${!1}'"
}

# A curl config value in double quotes, with \ and " escaped.
es_config_string() {
	local v=${1//\\/\\\\}
	v=${v//\"/\\\"}
	printf '"%s"' "$v"
}

# Later requests authenticate as user $1 with password $2 (HTTP basic auth).
es_login() {
	local user=$1 password=$2
	[[ $user != *:* ]] || die "the user name '$user' contains ':', which HTTP basic auth cannot carry"
	(
		umask 077
		printf 'user = %s\n' "$(es_config_string "$user:$password")" >"$work/curl.conf"
	)
	es_config=$work/curl.conf
}

# One request: es METHOD PATH [JSON_BODY_FILE]. Dies only when the cluster cannot be reached.
es() {
	local method=$1 path=$2 body=${3:-} out rc
	# --globoff: no part of a URL here is a curl glob pattern.
	local args=(--silent --show-error --globoff --connect-timeout 30 --config "$es_config")
	if [[ ${ES_INSECURE:-false} == true ]]; then args+=(--insecure); fi
	args+=(--request "$method")
	if [[ -n $body ]]; then
		args+=(--header 'Content-Type: application/json' --data-binary "@$body")
	fi
	args+=(--write-out '\n%{http_code}' "$ES_URL$path")
	set +e
	out=$(curl "${args[@]}")
	rc=$?
	set -e
	((rc == 0)) ||
		die "$method $ES_URL$path failed (curl exit $rc, its message is above); check the address, the network policy and TLS (spec.sslConnection)"
	es_status=${out##*$'\n'}
	if [[ $out == *$'\n'* ]]; then es_body=${out%$'\n'*}; else es_body=""; fi
	[[ $es_status =~ ^[0-9]{3}$ ]] || die "$method $ES_URL$path: curl reported no HTTP status"
}

# The cluster's reason for the last failed request, for messages.
es_reason() {
	local reason
	reason=$(jq -r '(.error.root_cause[0].reason // .error.reason // (.error | strings) // .message // empty) | tostring' \
		<<<"$es_body" 2>/dev/null) || reason=""
	[[ -n $reason ]] || reason=${es_body:0:300}
	printf 'HTTP %s: %s' "$es_status" "$reason"
}

# Dies with $1 and the cluster's reason unless the last request succeeded.
es_expect() {
	[[ $es_status == 2?? ]] || die "$1 failed ($(es_reason))"
}

# The snapshot repository of the backups of $1 (a BACKUP_NAME).
es_repository() {
	printf 'dbo-%s\n' "$1"
}

# The folder of the bucket that holds the snapshots of $1 (a BACKUP_NAME).
es_base_path() {
	printf '%s\n' "${BACKUP_PREFIX:+${BACKUP_PREFIX%/}/}$1"
}

# Registers (or updates, idempotently) repository $1 for the backups of $2 in their own folder
# of the bucket; $3 is true for a repository this Job only reads.
es_register_repository() {
	local repo=$1 name=$2 readonly=$3 saved_config=$es_config
	jq -n --arg bucket "$BACKUP_BUCKET" --arg base_path "$(es_base_path "$name")" \
		--arg client "${SNAPSHOT_S3_CLIENT:-}" --arg role_arn "${SNAPSHOT_ROLE_ARN:-}" \
		--arg region "${SNAPSHOT_S3_REGION:-}" --argjson readonly "$readonly" \
		'{type: "s3", settings: ({bucket: $bucket, base_path: $base_path, readonly: $readonly}
			+ (if $client != "" then {client: $client} else {} end)
			+ (if $role_arn != "" then {role_arn: $role_arn} else {} end)
			+ (if $region != "" then {region: $region} else {} end))}' >"$work/repository.json"
	if [[ -n ${SNAPSHOT_ROLE_ARN:-} ]]; then
		# Amazon OpenSearch Service accepts a repository with a role_arn only in a request signed
		# by an identity that may pass that role (iam:PassRole).
		es_sign_with_web_identity
	fi
	log "registering snapshot repository $repo at s3://$BACKUP_BUCKET/$(es_base_path "$name")"
	es PUT "/_snapshot/$repo" "$work/repository.json"
	es_config=$saved_config
	es_expect "registering snapshot repository $repo (s3://$BACKUP_BUCKET/$(es_base_path "$name")); the cluster verifies it can write there, so check the bucket, the S3 access of the cluster${SNAPSHOT_S3_CLIENT:+ (S3 client $SNAPSHOT_S3_CLIENT of the nodes)}${SNAPSHOT_ROLE_ARN:+ (role $SNAPSHOT_ROLE_ARN)}"
}

# Points `es` at a config that signs requests (SigV4, service `es`) with credentials of the
# pod's web identity (EKS IRSA: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE).
es_sign_with_web_identity() {
	local out rc
	require_env AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE ES_AWS_REGION
	[[ -r $AWS_WEB_IDENTITY_TOKEN_FILE ]] ||
		die "cannot read the web identity token $AWS_WEB_IDENTITY_TOKEN_FILE; is the ServiceAccount annotated for IRSA?"
	set +e
	out=$(curl --silent --show-error --connect-timeout 30 --fail-with-body \
		--header 'Accept: application/json' \
		--data Action=AssumeRoleWithWebIdentity --data Version=2011-06-15 \
		--data-urlencode "RoleArn=$AWS_ROLE_ARN" --data-urlencode "RoleSessionName=db-operator-$prog" \
		--data-urlencode "WebIdentityToken@$AWS_WEB_IDENTITY_TOKEN_FILE" \
		"https://sts.$ES_AWS_REGION.amazonaws.com/")
	rc=$?
	set -e
	((rc == 0)) || die "assuming $AWS_ROLE_ARN with the pod's web identity failed (curl exit $rc): ${out:0:300}"
	(
		umask 077
		jq -r '.AssumeRoleWithWebIdentityResponse.AssumeRoleWithWebIdentityResult.Credentials
			| select(.AccessKeyId and .SecretAccessKey and .SessionToken)
			| .AccessKeyId, .SecretAccessKey, .SessionToken' <<<"$out" >"$work/sts" 2>/dev/null
	) || die "STS answered without credentials for $AWS_ROLE_ARN"
	local id secret token
	{ read -r id && read -r secret && read -r token; } <"$work/sts" ||
		die "STS answered without credentials for $AWS_ROLE_ARN"
	(
		umask 077
		printf 'user = %s\naws-sigv4 = %s\nheader = %s\n' "$(es_config_string "$id:$secret")" \
			"$(es_config_string "aws:amz:$ES_AWS_REGION:es")" \
			"$(es_config_string "x-amz-security-token: $token")" >"$work/signed.conf"
	)
	rm -f "$work/sts"
	es_config=$work/signed.conf
}
