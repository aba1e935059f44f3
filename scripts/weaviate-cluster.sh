#!/usr/bin/env bash
# A Weaviate cluster of N nodes on this machine, on 127.0.0.1 only, for simsearch push/query --engine.
#
#   scripts/weaviate-cluster.sh start N DIR [BASE]   start the nodes of DIR that are not running
#   scripts/weaviate-cluster.sh stop DIR             stop them all (SIGTERM, then SIGKILL after 30 s)
#   scripts/weaviate-cluster.sh status DIR           one line per node: running or not
#
# Node i (0-based) answers REST on port BASE+i (BASE 8080 by default) and gRPC on BASE+i+41971
# (Weaviate's defaults, 8080 and 50051, for node 0; simsearch derives the gRPC port the same way);
# its cluster ports are P = BASE+100+10*i and up: gossip P+1, data P+2, raft P+3, raft RPC P+4
# (Weaviate's local mode wants raft RPC = raft + 1). Data lives in DIR/nodeI/, the pid in DIR/nodeI.pid, the log in
# DIR/nodeI.log. Every node gets the same join list, itself included: a node started without it
# would run alone and answer partial results without an error, so the script refuses to start a
# node of DIR with another N or BASE than DIR was created with (DIR/cluster.conf).
#
# REPLICA_MOVEMENT_ENABLED makes Weaviate serve its sharding state, from which simsearch names the
# nodes that are down (a killed node drops out of Weaviate's list of nodes).
#
# start is also how a killed node comes back: the nodes still running are left alone and the
# missing ones are started with the same configuration; it returns once every node is ready and
# sees all N nodes as healthy (or fails, naming the node and its log).
#
# Environment: WEAVIATE_BIN (default bin/weaviate-server, built by `make weaviate`),
# WEAVIATE_START_TIMEOUT in seconds (default 180).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${WEAVIATE_BIN:-$repo/bin/weaviate-server}"
[[ "$bin" = /* ]] || bin="$PWD/$bin" # the nodes start in DIR
timeout="${WEAVIATE_START_TIMEOUT:-180}"

die() { printf 'weaviate-cluster: %s\n' "$*" >&2; exit 1; }
say() { printf 'weaviate-cluster: %s\n' "$*" >&2; }

usage() {
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

node_port() { # dir i -> node i's REST port, from DIR/cluster.conf
	local base
	base=$(sed -n 's/^N=[0-9]* BASE=\([0-9]*\)$/\1/p' "$1/cluster.conf" 2>/dev/null)
	[ -n "$base" ] && echo $((base + $2))
}

alive() { # dir i -> is node i of DIR running? Its pid file must name a live process started as
	# that node (the arguments start gives it): a pid reused since by another program is not it.
	local f="$1/node$2.pid" pid port args
	[ -f "$f" ] && pid=$(cat "$f") && kill -0 "$pid" 2>/dev/null || return 1
	port=$(node_port "$1" "$2") || return 1
	args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
	[[ "$args" == *" --host 127.0.0.1 --port $port --scheme http" ]]
}

port_free() { # port -> nothing listens on it (TCP), on any address: gRPC and the data port
	# listen on all interfaces, so a program on another address than 127.0.0.1 blocks them too
	if command -v ss >/dev/null; then
		[ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
	elif [ -r /proc/net/tcp ]; then # local_address is HEX_ADDR:HEX_PORT, state 0A is LISTEN
		! awk -v p="$(printf '%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 3) == p { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
	elif command -v lsof >/dev/null; then
		! lsof -nP -iTCP:"$1" -sTCP:LISTEN >/dev/null 2>&1
	else
		! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

http_ok() { # url -> 2xx?
	curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
}

start() {
	local n="$1" dir="$2" base="${3:-8080}"
	[[ "$n" =~ ^[1-9]$ ]] || die "N must be 1 to 9 nodes, not '$n'"
	[[ "$base" =~ ^[0-9]+$ ]] && [ "$base" -ge 1024 ] && [ $((base + n + 41971)) -le 65535 ] ||
		die "BASE must be a port from 1024 to $((65535 - 41971 - n)) (gRPC listens on BASE+i+41971), not '$base'"
	[ -x "$bin" ] || die "$bin is missing: run 'make weaviate' (or set WEAVIATE_BIN)"
	command -v curl >/dev/null || die "curl is needed to wait for the nodes"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	local conf="N=$n BASE=$base"
	if [ -f "$dir/cluster.conf" ]; then
		[ "$(cat "$dir/cluster.conf")" = "$conf" ] ||
			die "$dir holds a cluster started as '$(cat "$dir/cluster.conf")', not '$conf': its nodes would not join this one. Use the same N and BASE, or another DIR"
	else
		echo "$conf" >"$dir/cluster.conf"
	fi

	# RAFT_JOIN lists every node with its raft port and RAFT_BOOTSTRAP_EXPECT is the number of
	# voters: Weaviate makes the first RAFT_BOOTSTRAP_EXPECT nodes of RAFT_JOIN its raft voters
	# (the others join as non-voters), and with CLUSTER_IN_LOCALHOST it finds the raft port of
	# every other node in RAFT_JOIN (a node missing from it is looked for on the node's own raft
	# port, which on one machine is another node's). So all N nodes are listed and the first
	# min(N, 3) vote: 3 voters survive one down. (Weaviate v1.35.2,
	# adapters/handlers/rest/configure_api.go: Raft.Join[:BootstrapExpect] and parseNode2Port.)
	local gossip_join="" raft_join="" i p
	for ((i = 0; i < n; i++)); do
		p=$((base + 100 + 10 * i))
		gossip_join+="${gossip_join:+,}127.0.0.1:$((p + 1))"
		raft_join+="${raft_join:+,}node$i:$((p + 3))"
	done
	local expect=$((n < 3 ? n : 3))

	local started=()
	for ((i = 0; i < n; i++)); do
		if alive "$dir" "$i"; then
			continue
		fi
		p=$((base + 100 + 10 * i))
		for port in $((base + i)) $((base + i + 41971)) $((p + 1)) $((p + 2)) $((p + 3)) $((p + 4)); do
			port_free "$port" || die "node$i: port $port is in use by another program: choose another BASE"
		done
		mkdir -p "$dir/node$i"
		(
			cd "$dir"
			exec env \
				PERSISTENCE_DATA_PATH="$dir/node$i" \
				DEFAULT_VECTORIZER_MODULE=none \
				ENABLE_MODULES= \
				AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true \
				AUTHORIZATION_ADMINLIST_ENABLED=false \
				DISABLE_TELEMETRY=true \
				GO_PROFILING_DISABLE=true \
				PROMETHEUS_MONITORING_ENABLED=false \
				QUERY_DEFAULTS_LIMIT=10 \
				LOG_LEVEL=warning \
				GRPC_PORT=$((base + i + 41971)) \
				CLUSTER_HOSTNAME="node$i" \
				CLUSTER_IN_LOCALHOST=true \
				CLUSTER_BIND_ADDR=127.0.0.1 \
				CLUSTER_ADVERTISE_ADDR=127.0.0.1 \
				CLUSTER_GOSSIP_BIND_PORT=$((p + 1)) \
				CLUSTER_DATA_BIND_PORT=$((p + 2)) \
				CLUSTER_JOIN="$gossip_join" \
				MEMBERLIST_FAST_FAILURE_DETECTION=true \
				REPLICA_MOVEMENT_ENABLED=true \
				HNSW_STARTUP_WAIT_FOR_VECTOR_CACHE=true \
				RAFT_PORT=$((p + 3)) \
				RAFT_INTERNAL_RPC_PORT=$((p + 4)) \
				RAFT_JOIN="$raft_join" \
				RAFT_BOOTSTRAP_EXPECT="$expect" \
				"$bin" --host 127.0.0.1 --port $((base + i)) --scheme http
		) >>"$dir/node$i.log" 2>&1 </dev/null &
		echo $! >"$dir/node$i.pid"
		started+=("$i")
		say "node$i: started (pid $!, REST 127.0.0.1:$((base + i)), gRPC 127.0.0.1:$((base + i + 41971)), log $dir/node$i.log)"
	done
	[ ${#started[@]} -eq 0 ] && say "all $n nodes of $dir are running already"

	# Ready = every node answers ready and lists all N nodes as HEALTHY.
	local deadline=$((SECONDS + timeout)) pending
	while :; do
		pending=""
		for ((i = 0; i < n; i++)); do
			# The pid start just wrote (it is still execing the server for a moment, so not
			# alive's test): has it exited?
			if ! kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
				abort_started "$dir" "${started[@]}"
				die "node$i exited while starting; the end of $dir/node$i.log:
$(tail -n 15 "$dir/node$i.log")"
			fi
			if ! http_ok "http://127.0.0.1:$((base + i))/v1/.well-known/ready"; then
				pending+=" node$i(not ready)"
				continue
			fi
			local healthy
			healthy=$(curl -fsS --max-time 5 "http://127.0.0.1:$((base + i))/v1/nodes" 2>/dev/null | grep -o '"status":"HEALTHY"' | wc -l || true)
			[ "$healthy" -ge "$n" ] || pending+=" node$i(sees $healthy/$n healthy)"
		done
		[ -z "$pending" ] && break
		if [ $SECONDS -ge $deadline ]; then
			abort_started "$dir" "${started[@]}"
			die "after ${timeout}s still waiting for:$pending (logs: $dir/node*.log)"
		fi
		sleep 1
	done
	say "$n nodes ready: REST http://127.0.0.1:$base/ … http://127.0.0.1:$((base + n - 1))/"
}

abort_started() { # dir node-numbers...: kill the nodes this start started, leave the others
	local dir="$1" i
	shift
	for i in "$@"; do
		alive "$dir" "$i" && kill -KILL "$(cat "$dir/node$i.pid")" 2>/dev/null
		rm -f "$dir/node$i.pid"
	done
}

node_of() { # DIR/nodeI.pid -> I
	local i="${1##*/node}"
	echo "${i%.pid}"
}

stop() {
	local dir="$1" f i
	[ -d "$dir" ] || die "$dir: no such directory"
	for f in "$dir"/node*.pid; do
		[ -f "$f" ] || continue
		if alive "$dir" "$(node_of "$f")"; then
			kill -TERM "$(cat "$f")" 2>/dev/null || true
		fi
	done
	local deadline=$((SECONDS + 30))
	for f in "$dir"/node*.pid; do
		[ -f "$f" ] || continue
		i=$(node_of "$f")
		while alive "$dir" "$i" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
		if alive "$dir" "$i"; then
			say "node$i did not stop in 30 s: killing it"
			kill -KILL "$(cat "$f")" 2>/dev/null || true
		fi
		rm -f "$f"
	done
	say "stopped the nodes of $dir"
}

status() {
	local dir="$1" f i
	for f in "$dir"/node*.pid; do
		[ -f "$f" ] || continue
		i=$(node_of "$f")
		if alive "$dir" "$i"; then echo "node$i running (pid $(cat "$f"))"; else echo "node$i not running"; fi
	done
}

case "${1:-}" in
start) [ $# -ge 3 ] && [ $# -le 4 ] || usage; start "$2" "$3" "${4:-8080}" ;;
stop) [ $# -eq 2 ] || usage; stop "$2" ;;
status) [ $# -eq 2 ] || usage; status "$2" ;;
*) usage ;;
esac
