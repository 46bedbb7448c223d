// kind-check validates a kind cluster config against kind's own public API types, without
// Docker: the file is decoded strictly (an unknown or misspelled field is an error) into
// sigs.k8s.io/kind/pkg/apis/config/v1alpha4.Cluster with the YAML decoder kind itself uses
// (go.yaml.in/yaml/v3 with KnownFields), then defaulted with v1alpha4.SetDefaultsCluster.
//
// kind's full validation (Cluster.Validate) lives in an internal package and cannot be
// imported, and `kind create cluster` checks for a container runtime before it even loads
// the config. A few of its rules that matter for us are re-stated here (roles, at least one
// control-plane node, a node image after defaulting); the rest are not checked.
//
// Usage: kind-check FILE     prints a one-line summary, exits 1 with the error otherwise.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

const (
	wantAPIVersion = "kind.x-k8s.io/v1alpha4"
	wantKind       = "Cluster"
)

func check(raw []byte) (*v1alpha4.Cluster, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	cfg := &v1alpha4.Cluster{}
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty document")
		}
		return nil, fmt.Errorf("decoding into %s %s: %w", wantAPIVersion, wantKind, err)
	}
	// kind reads only the first document; a second one would be silently ignored by kind.
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document: kind reads only the first")
	}
	if cfg.APIVersion != wantAPIVersion || cfg.Kind != wantKind {
		return nil, fmt.Errorf("apiVersion/kind is %q/%q, want %q/%q",
			cfg.APIVersion, cfg.Kind, wantAPIVersion, wantKind)
	}
	v1alpha4.SetDefaultsCluster(cfg)

	controlPlanes := 0
	for i, n := range cfg.Nodes {
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			return nil, fmt.Errorf("nodes[%d].role: %q is neither %q nor %q",
				i, n.Role, v1alpha4.ControlPlaneRole, v1alpha4.WorkerRole)
		}
		if n.Image == "" {
			return nil, fmt.Errorf("nodes[%d].image: empty after defaulting", i)
		}
	}
	if controlPlanes == 0 {
		return nil, errors.New("nodes: no node has role control-plane")
	}
	return cfg, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-check FILE")
		os.Exit(2)
	}
	path := os.Args[1]
	raw, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kind-check: %v\n", err)
		os.Exit(1)
	}
	cfg, err := check(raw)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kind-check: %s: %v\n", path, err)
		os.Exit(1)
	}
	fmt.Printf("%s: valid %s %s, %d nodes:", path, wantAPIVersion, wantKind, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		fmt.Printf(" %s(%s)", n.Role, n.Image)
	}
	fmt.Println()
}
