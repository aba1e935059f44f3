#!/bin/sh
# The page's part of `make demo`: serves the demo collection in the background on a free port,
# asks it what the page asks (health, the duplicate groups, a thumbnail, "more like this", the
# map), prints a line for each, and stops it with SIGTERM, as a service manager would. The server
# never outlives the script: it is stopped on any failure or interruption too.
# Usage: scripts/demo-page.sh SIMSEARCH INDEX PHOTOS THUMBS ID
set -eu
bin=$1 index=$2 photos=$3 thumbs=$4 id=$5

log=$(mktemp)
"$bin" serve --index "$index" --objects "$photos" --thumbs "$thumbs" --addr 127.0.0.1:0 --quiet 2>"$log" &
pid=$!
stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$log"
}
trap stop EXIT
trap 'exit 130' INT TERM

# The server says where it listens once the index is mapped and the model loaded.
url=""
for _ in $(seq 300); do
	url=$(sed -n 's|^simsearch: serving .* on \(http://[^ ]*/\)$|\1|p' "$log")
	[ -n "$url" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "demo-page: the server exited" >&2; exit 1; }
	sleep 0.1
done
[ -n "$url" ] || { cat "$log" >&2; echo "demo-page: the server did not start in 30 s" >&2; exit 1; }
echo "serving on $url (pid $pid)"

get() { curl -fsS --max-time 60 "$url$1"; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; } # a number from a one-line JSON answer
say() { printf '%-30s %s\n' "$1" "$2"; }

# Each answer is fetched on its own line, so that a failed request stops the script (set -e).
health=$(get healthz)
say "GET /healthz" "$health"
dupes=$(get dupes)
say "GET /dupes" "$(echo "$dupes" | field total_groups) groups of near-duplicates"
thumb=$(curl -fsS --max-time 60 -o /dev/null -w '%{http_code}, %{size_download} bytes of %{content_type}' "${url}thumbs/$id")
orig=$(wc -c <"$photos/$id")
say "GET /thumbs/$id" "$thumb (the original: $orig bytes)"
more=$(get "search/id/$id?k=3")
say "GET /search/id/$id?k=3" "$(echo "$more" | grep -o '"id":"[^"]*","distance":[^,}]*' | sed 's/"id":"\(.*\)","distance":\(.*\)/\1 at \2/' | paste -sd ';' | sed 's/;/; /g')"
map=$(get map)
say "GET /map" "$(echo "$map" | grep -o '"id":' | wc -l) photos placed on the map"

# A clean stop: SIGTERM lets requests in flight finish and exits 0.
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
trap - EXIT
grep -q "simsearch: stopped" "$log" || status=1
rm -f "$log"
[ "$status" -eq 0 ] || { echo "demo-page: the server did not stop cleanly (exit $status)" >&2; exit 1; }
echo "stopped the server (SIGTERM, exit 0)"
