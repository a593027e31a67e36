# shellcheck shell=bash
# Shared by this image's entrypoints: how redis-cli reaches the server. Sourced after lib.sh.

# redis-cli's TLS flags from DB_TLS / DB_TLS_SKIP_VERIFY, in the array `tls_args`. Without
# --cacert redis-cli verifies against the system CAs, as the DbInstance's TLS settings mean.
tls_args=()
set_tls_args() {
	case ${DB_TLS:-false} in
	true) tls_args=(--tls --sni "$DB_HOST") ;;
	false) return 0 ;;
	*) die "DB_TLS must be true or false, got '$DB_TLS'" ;;
	esac
	case ${DB_TLS_SKIP_VERIFY:-false} in
	true) tls_args+=(--insecure) ;;
	false) ;;
	*) die "DB_TLS_SKIP_VERIFY must be true or false, got '$DB_TLS_SKIP_VERIFY'" ;;
	esac
}
