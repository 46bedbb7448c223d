#!/usr/bin/env bash
# Local PKI for the cluster: one CA, serving and client certificates, the
# service-account key pair, and a kubeconfig per client. Idempotent: files
# that exist are kept, so a restart keeps every credential valid.
set -euo pipefail

pki=$1        # output directory
node_ip=$2    # address pods use to reach the node (in the apiserver's SANs)
node_name=$3
mkdir -p "$pki"
cd "$pki"

days=3650
openssl_quiet() { openssl "$@" 2>/dev/null; }

if [[ ! -f ca.crt ]]; then
  openssl_quiet genrsa -out ca.key 2048
  openssl_quiet req -x509 -new -nodes -key ca.key -sha256 -days $days \
    -subj "/CN=modelship-local-ca" -out ca.crt
fi

# cert NAME SUBJECT [SUBJECT_ALT_NAMES] [EXTENDED_KEY_USAGE]
cert() {
  local name=$1 subj=$2 sans=${3:-} eku=${4:-clientAuth}
  [[ -f $name.crt ]] && return 0
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl_quiet genrsa -out "$name.key" 2048
  openssl_quiet req -new -key "$name.key" -subj "$subj" -out "$name.csr"
  openssl_quiet x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days $days -sha256 -extfile "$ext" -out "$name.crt"
  rm -f "$name.csr" "$ext"
}

apiserver_sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
apiserver_sans+=",DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
apiserver_sans+=",IP:127.0.0.1,IP:10.96.0.1,IP:$node_ip"
cert apiserver "/CN=kube-apiserver" "$apiserver_sans" serverAuth
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=kubernetes-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kubelet "/O=system:nodes/CN=system:node:$node_name"
cert kubelet-serving "/CN=$node_name" "DNS:$node_name,IP:$node_ip,IP:127.0.0.1" serverAuth
cert kube-proxy "/CN=system:kube-proxy"
cert coredns "/CN=modelship:coredns"

if [[ ! -f sa.key ]]; then
  openssl_quiet genrsa -out sa.key 2048
  openssl_quiet rsa -in sa.key -pubout -out sa.pub
fi
chmod 600 ./*.key
