#!/usr/bin/env bash
# Prometheus + Grafana on the Ray head, wired to the configs Ray generates for its session,
# with raytag's dashboard provisioned next to Ray's own. Run on the head node, after
# `ray up` (it starts the head with RAY_PROMETHEUS_HOST / RAY_GRAFANA_HOST pointing here):
#
#   ray exec cluster/aws.yaml 'bash ~/raytag/cluster/monitoring.sh'
#
# Then, from your machine (SSH tunnels; nothing is opened to the internet):
#   ray dashboard cluster/aws.yaml                                  # Ray dashboard, :8265
#   ray dashboard --port 3000 --remote-port 3000 cluster/aws.yaml   # Grafana, :3000
#
# Ray regenerates its Grafana provisioning folder for each session: rerun this script after
# every `ray start --head` (it is idempotent). RAYTAG_PROVISION_ONLY=1 only copies the
# dashboard (what the tests exercise against a real head); RAY_TMP overrides /tmp/ray.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SESSION=${RAY_TMP:-/tmp/ray}/session_latest
GRAFANA_VERSION=${GRAFANA_VERSION:-11.6.0}
GRAFANA_HOME=${GRAFANA_HOME:-$HOME/grafana-$GRAFANA_VERSION}

dashboards="$SESSION/metrics/grafana/dashboards"
if [ ! -d "$dashboards" ]; then
  echo "monitoring.sh: $dashboards not found: is a Ray head (with its dashboard) running here?" >&2
  exit 2
fi
cp "$REPO/dashboards/raytag.json" "$dashboards/raytag.json"
echo "monitoring.sh: raytag dashboard provisioned in $dashboards"
[ "${RAYTAG_PROVISION_ONLY:-0}" = 1 ] && exit 0

# Prometheus with Ray's generated scrape config (service discovery of every node's agent).
if ! curl -sf http://127.0.0.1:9090/-/ready >/dev/null; then
  ray metrics launch-prometheus
fi

# Grafana with Ray's generated grafana.ini (embedding allowed, Prometheus data source,
# Ray's and raytag's dashboards provisioned).
if ! curl -sf http://127.0.0.1:3000/api/health >/dev/null; then
  if [ ! -x "$GRAFANA_HOME/bin/grafana" ]; then
    url="https://dl.grafana.com/oss/release/grafana-$GRAFANA_VERSION.linux-amd64.tar.gz"
    mkdir -p "$GRAFANA_HOME"
    curl -sfL "$url" | tar -xz -C "$GRAFANA_HOME" --strip-components=1
  fi
  nohup "$GRAFANA_HOME/bin/grafana" server --homepath "$GRAFANA_HOME" \
    --config "$SESSION/metrics/grafana/grafana.ini" web > "$HOME/grafana.log" 2>&1 &
  echo "monitoring.sh: Grafana starting on :3000 (log: ~/grafana.log)"
fi
