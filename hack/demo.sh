#!/usr/bin/env bash
# `make demo`: the main job end to end on the local cluster. `make images` and
# `cluster-up` (which imports the images into the node) have run before. The
# operator runs in-cluster from its image; a real scikit-learn classifier is
# trained here, applied as a ModelDeployment, built (converted to ONNX,
# optimized, validated) by a Job, served, and asked for one prediction through
# its Service.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

NS=${MODELSHIP_DEMO_NAMESPACE:-modelship-demo}
MODEL_DIR=/var/lib/modelship/models/iris
kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$repo/.cluster/kubeconfig" "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "operator: CRD, RBAC and Deployment in development mode (kubectl apply -k hack/development)"
# --force-conflicts: the demo owns this install, including a replica count a tool changed.
kubectl apply --server-side --force-conflicts -k "$repo/hack/development" >/dev/null
kubectl wait --for=condition=Established crd/modeldeployments.modelship.io --timeout=60s
# The operator's own PodMonitor and alerts, where prometheus-operator's CRDs are installed
# (make cluster-up installs them with the local Prometheus).
if kubectl get crd podmonitors.monitoring.coreos.com >/dev/null 2>&1; then
  kubectl apply --server-side --force-conflicts -k "$repo/manifests/monitoring" >/dev/null
fi
# A fresh rollout picks up a rebuilt operator image with the same tag.
kubectl -n modelship-system rollout restart deployment/modelship-operator >/dev/null
kubectl -n modelship-system rollout status deployment/modelship-operator --timeout=180s

step "a model: a scikit-learn classifier trained on iris, saved where the node can read it"
mkdir -p "$MODEL_DIR"
"$repo/.venv/bin/python" - "$MODEL_DIR/model.joblib" <<'EOF'
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

x, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=500).fit(x, y)
joblib.dump(model, sys.argv[1])
print(f"trained LogisticRegression on iris: train accuracy {model.score(x, y):.3f} -> {sys.argv[1]}")
EOF

step "ModelDeployment iris in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NS" apply -f "$repo/examples/sklearn-iris.yaml"

step "waiting for md/iris to be Ready (build Job, then serving pods)"
deadline=$((SECONDS + 600))
last=""
until kubectl -n "$NS" wait --for=condition=Ready md/iris --timeout=5s >/dev/null 2>&1; do
  now=$(kubectl -n "$NS" get md iris -o jsonpath='{.status.phase}: {.status.conditions[?(@.type=="Progressing")].message}' 2>/dev/null || true)
  [[ $now != "$last" ]] && { echo "  $now"; last=$now; }
  if ((SECONDS > deadline)); then
    echo "md/iris not Ready after 10 minutes:" >&2
    kubectl -n "$NS" get md,jobs,pods -o wide >&2
    kubectl -n "$NS" describe md iris >&2
    exit 1
  fi
done
kubectl -n "$NS" get md iris

step "one inference through the model's Service, from a pod"
url=$(kubectl -n "$NS" get md iris -o jsonpath='{.status.url}')
echo "POST $url/infer"
kubectl -n "$NS" delete pod demo-client --ignore-not-found --wait=true >/dev/null
kubectl -n "$NS" run demo-client --quiet --rm -i --restart=Never \
  --image=docker.io/modelship/runtime:0.1.0 --image-pull-policy=IfNotPresent \
  --command -- python3 -c "
import json, time, urllib.error, urllib.request
body = {'id': 'demo-1', 'inputs': [{'name': 'x', 'datatype': 'FP32', 'shape': [2, 4],
        'data': [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}
req = urllib.request.Request('$url/infer', data=json.dumps(body).encode(),
                             headers={'Content-Type': 'application/json'})
# Ready follows the pods; kube-proxy writes the Service's rules a moment later, and until then
# the ClusterIP refuses. Only a refused connection is retried, for at most 30 s.
deadline = time.monotonic() + 30
while True:
    try:
        reply = urllib.request.urlopen(req, timeout=30)
        break
    except urllib.error.URLError as e:
        if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > deadline:
            raise
        print('connection refused (the Service rules are not in place yet); retrying', flush=True)
        time.sleep(1)
print(json.dumps(json.load(reply), indent=2))
"
step "live metrics: Prometheus scrapes md/iris through the PodMonitor the operator created"
"$repo/.venv/bin/python" "$here/demo_metrics.py" --endpoints "$repo/.cluster/endpoints.env" \
  --service-ip "$(kubectl -n "$NS" get service iris -o jsonpath='{.spec.clusterIP}')" \
  --namespace "$NS" --model iris
echo "Dashboards: ConfigMap $NS/iris-dashboard (label grafana_dashboard=1, for Grafana's sidecar);"
echo "  to import by hand: manifests/dashboards/model.json and manifests/dashboards/fleet.json"

step "done: kubectl --kubeconfig .cluster/kubeconfig -n $NS get md"
